"""HNSW: the compiled kernels equal the Python reference, one distance for search and heuristic, duplicates.

Equality has no tolerance: both paths add the same float32 numbers in the same order
(``hnsw.lane_distance`` = ``hnsw_kernels.distance``) and order ties the same way, so they must build
the same graph (every link list, in order) and return the same ids and the same distances, bit for bit.

Recall on exact duplicates: a set of 400 distinct vectors × 5 exact copies. Truth is exact in float64
on the 400 distinct vectors: the 2 nearest, i.e. exactly 10 ids (their copies), so ties in the truth
cannot make recall ambiguous. Both libraries' recall moves with the random layer draws, so we compare
the mean over three seeds, as tests/test_vectordb_indexes.py does for k-means.
"""

from __future__ import annotations

import hnswlib
import numpy as np
import pytest

from course_lib.vectordb import HNSWIndex, clustered_vectors
from course_lib.vectordb.hnsw import lane_distance
from course_lib.vectordb.hnsw_kernels import LANES, distance

COPIES = 5


def duplicated(n_unique=400, dim=32, seed=0):
    """``n_unique`` clustered vectors, each stored ``COPIES`` times in shuffled order; ``group`` maps id → original."""
    base, xq = clustered_vectors(n_unique, dim, n_clusters=20, n_queries=200, seed=seed)
    order = np.random.default_rng(seed).permutation(n_unique * COPIES)
    return base, np.repeat(base, COPIES, axis=0)[order], xq, np.repeat(np.arange(n_unique), COPIES)[order]


def duplicate_recall(ids, base, xq, group, metric):
    """Recall@10 against the copies of the 2 exactly nearest distinct vectors (float64)."""
    b, q = base.astype(np.float64), xq.astype(np.float64)
    d = ((q[:, None] - b[None]) ** 2).sum(-1) if metric == "l2" else -q @ b.T      # (nq, n_unique)
    top = np.argsort(d, axis=1)[:, :ids.shape[1] // COPIES]
    return float(np.mean([np.isin(group[ids[r]], top[r]).mean() for r in range(len(xq))]))


@pytest.fixture(scope="module", params=["clustered", "uniform", "duplicates"])
def dataset(request):
    if request.param == "clustered":
        xb, xq = clustered_vectors(1200, 40, n_clusters=30, n_queries=60, seed=7)   # 40: zero-padded to 64
    elif request.param == "uniform":
        rng = np.random.default_rng(1)
        xb, xq = rng.uniform(-1, 1, (800, 16)).astype(np.float32), rng.uniform(-1, 1, (60, 16)).astype(np.float32)
    else:
        _, xb, xq, _ = duplicated(160, 24, seed=3)                 # 800 points, every distance tied 5 ways
        xq = np.concatenate([xq[:40], xb[:20]])                      # queries that are stored vectors: ties at 0
    return xb, xq


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_compiled_build_and_search_equal_python(dataset, metric):
    xb, xq = dataset
    index = {kernel: HNSWIndex(xb.shape[1], M=6, ef_construction=24, metric=metric, kernel=kernel)
             for kernel in ("numba", "python")}
    assert HNSWIndex(4).kernel == "numba"                                  # the compiled path is the default
    for part in (xb[:300], xb[300:]):                                       # two add() calls: ids continue
        for ix in index.values():
            ix.add(part)
    fast, ref = index["numba"], index["python"]
    assert (fast.entry, fast.max_level) == (ref.entry, ref.max_level)
    np.testing.assert_array_equal(fast.level, ref.level)
    np.testing.assert_array_equal(fast.deg, ref.deg)
    used = np.arange(fast.M0)[None, :] < fast.deg[:, None]                  # (R, M0) the used link slots
    np.testing.assert_array_equal(np.where(used, fast.links, -1), np.where(used, ref.links, -1))
    for k, ef in [(1, 1), (10, 10), (10, 32), (25, 8)]:
        d_fast, i_fast = fast.search(xq, k, ef=ef)
        d_ref, i_ref = ref.search(xq, k, ef=ef)
        np.testing.assert_array_equal(i_fast, i_ref)
        np.testing.assert_array_equal(d_fast, d_ref)                        # bit-equal float32


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_compiled_distance_equals_lane_distance(metric):
    rng = np.random.default_rng(0)
    for dim in (LANES, 2 * LANES, 384):                                     # multiples of LANES (padded rows)
        x = rng.standard_normal((50, dim)).astype(np.float32)
        q = rng.standard_normal(dim).astype(np.float32)
        ours = lane_distance(x, q, metric)
        acc = np.empty(LANES, np.float32)
        np.testing.assert_array_equal([distance(x, i, q, metric == "l2", acc) for i in range(len(x))], ours)
        exact = ((x - q).astype(np.float64) ** 2).sum(1) if metric == "l2" else 1 - x.astype(np.float64) @ q
        np.testing.assert_allclose(ours, exact, rtol=1e-5, atol=1e-4)        # float32 sums of ≤ 384 terms


def test_exact_copies_are_exact_ties():
    """Two copies of a vector are at exactly the same distance from any third, whichever side each is on."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 2 * LANES)).astype(np.float32)
    for metric in ("ip", "l2"):
        for a, b in [(0, 1), (2, 3)]:
            copies = np.stack([x[a], x[a]])
            assert lane_distance(copies, x[b], metric)[0] == lane_distance(x[b][None], x[a], metric)[0]
            assert len(set(lane_distance(copies, x[b], metric).tolist())) == 1


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_recall_with_exact_duplicates_within_002_of_hnswlib(metric):
    # on the old code (candidate-to-kept distance by a GEMM, candidate-to-base by another formula)
    # ties between copies rounded apart and the heuristic dropped valid links: 0.85 vs hnswlib's 0.95
    base, xb, xq, group = duplicated()
    ours, theirs = [], []
    for seed in (0, 1, 2):
        index = HNSWIndex(32, M=8, ef_construction=64, metric=metric, seed=seed)
        index.add(xb)
        ref = hnswlib.Index(space=metric, dim=32)
        ref.init_index(max_elements=len(xb), M=8, ef_construction=64, random_seed=seed)
        ref.set_num_threads(1)
        ref.add_items(xb)
        ref.set_ef(16)
        ours.append(duplicate_recall(index.search(xq, 10, ef=16)[1], base, xq, group, metric))
        theirs.append(duplicate_recall(ref.knn_query(xq, k=10)[0], base, xq, group, metric))
    assert np.mean(ours) >= np.mean(theirs) - 0.02, (ours, theirs)
    assert np.mean(theirs) > 0.9, theirs                                    # the set is searchable at all


def test_bad_kernel():
    with pytest.raises(ValueError, match="kernel must be"):
        HNSWIndex(8, kernel="cuda")
