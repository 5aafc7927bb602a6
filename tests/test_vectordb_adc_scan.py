"""The compiled IVF-PQ scan (numba) against the torch reference kernel: the same ids and the same scores.

Tolerance: none on scores (``assert_array_equal``). Both kernels add the same float32 numbers in the
same order (Σ_j left to right, then ``s·(−2) + Σ_j C``, then ``+ dis0``), so the sums are equal bit
for bit. Ids may differ only where two candidates have exactly equal scores (``torch.topk`` leaves the
order of ties open); the check below allows that and nothing else.
"""

from __future__ import annotations

import numpy as np
import pytest

from course_lib.vectordb import IVFPQIndex, clustered_vectors
from course_lib.vectordb.adc_scan import adc_scan


def assert_same_topk(got, ref):
    (s, i), (s_ref, i_ref) = got, ref
    np.testing.assert_array_equal(s, s_ref)                     # bit-equal float32 scores, in rank order
    for row in np.flatnonzero((i != i_ref).any(1)):              # differing ids: only among tied scores
        for score in np.unique(s[row]):
            tied = s[row] == score
            if score != s[row][-1]:                              # a tie cut by the k-th place may keep other ids
                assert set(i[row][tied]) == set(i_ref[row][tied]), (row, i[row], i_ref[row])


def _both(index, q, k, nprobe, rerank=None):
    out = {}
    for kernel in ("torch", "numba"):
        index.kernel = kernel
        out[kernel] = index.search(q, k, nprobe=nprobe, rerank=rerank, batch=64)
    return out["numba"], out["torch"]


@pytest.fixture(scope="module", params=["random", "clustered"])
def vectors(request):
    rng = np.random.default_rng(0)
    if request.param == "random":                                # uniform, no structure
        xb = rng.uniform(-1, 1, (3000, 64)).astype(np.float32)
        xq = rng.uniform(-1, 1, (150, 64)).astype(np.float32)
    else:                                                        # real-ish: tight clusters on the unit sphere
        xb, xq = clustered_vectors(3000, 64, n_clusters=40, n_queries=150, seed=5)
    return xb, xq


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("rerank", [None, 4])
def test_numba_scan_equals_torch_scan(vectors, metric, rerank):
    xb, xq = vectors
    index = IVFPQIndex(64, 16, m=8, metric=metric, keep_vectors=True)
    assert index.kernel == "numba"                               # the compiled path is the default
    index.train(xb, niter=5, seed=1)
    index.add(xb)
    for k, nprobe in [(10, 1), (10, 4), (25, 16)]:
        assert_same_topk(*_both(index, xq, k, nprobe, rerank))


def test_fewer_candidates_than_k_pad_like_torch():
    xb, xq = clustered_vectors(400, 16, n_clusters=8, n_queries=20, seed=2)
    for metric in ("ip", "l2"):
        index = IVFPQIndex(16, 32, m=4, nbits=4, metric=metric)
        index.train(xb, niter=3)
        index.add(xb)
        got, ref = _both(index, xq, 60, 1)                       # one cell holds < 60 codes: -1 ids, ±inf scores
        assert (ref[1] == -1).any()
        assert_same_topk(got, ref)


def test_bad_input():
    codes = np.zeros((2, 4), np.uint8)                          # (m, N)
    args = (np.arange(4), np.array([0]), np.array([4]), np.zeros((1, 1), np.int64), np.zeros((1, 1), np.float32))
    with pytest.raises(TypeError, match="codes_t must be a 2-D uint8"):
        adc_scan(codes.astype(np.int64), *args, np.zeros((1, 2, 16), np.float32), None, 1)
    with pytest.raises(ValueError, match="do not match"):
        adc_scan(codes, *args, np.zeros((1, 3, 16), np.float32), None, 1)
    with pytest.raises(ValueError, match="k must be a positive int"):
        adc_scan(codes, *args, np.zeros((1, 2, 16), np.float32), None, 0)
    with pytest.raises(ValueError, match="kernel must be"):
        IVFPQIndex(16, 4, m=4, kernel="cuda")
