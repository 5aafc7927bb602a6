"""Exercises of chapter 08 (vector databases)."""

from __future__ import annotations

import numpy as np

from course_lib.exercises import exercise
from course_lib.vectordb.flat import exact_search
from course_lib.vectordb.hybrid import reciprocal_rank_fusion
from course_lib.vectordb.pq import ProductQuantizer
from course_lib.vectordb.synthetic import clustered_vectors


def _l2_topk_ip(xb, xq, k):           # wrong: ranks by inner product, not by distance
    return np.argsort(-(xq @ xb.T), axis=1)[:, :k]


def _l2_topk_far(xb, xq, k):          # wrong: sorts the distances the wrong way round
    d = (xq ** 2).sum(1)[:, None] - 2 * xq @ xb.T + (xb ** 2).sum(1)[None]
    return np.argsort(-d, axis=1)[:, :k]


@exercise("08.1", answer="l2_topk", wrong=(_l2_topk_ip, _l2_topk_far), writes_code=True)
def check_l2_topk(fn) -> str:
    """Check exercise 08.1: the learner's exact L2 top-k ids against ``exact_search`` (faiss IndexFlatL2)."""
    rng = np.random.default_rng(0)
    xb = rng.normal(size=(300, 8)).astype(np.float32) * rng.uniform(0.2, 3, size=(300, 1)).astype(np.float32)
    xq = rng.normal(size=(5, 8)).astype(np.float32)
    got = np.asarray(fn(xb, xq, 5))
    assert got.shape == (5, 5), f"expected ids of shape (5, 5), got {got.shape}"
    want = exact_search(xb, xq, 5, "l2")[1]
    assert (got == want).all(), "the ids differ from exact L2 search (smallest ‖q − x‖² first)"
    return "一次 GEMM 得到所有 ‖q − x‖²，和 faiss IndexFlatL2 的做法一样。"


def _adc_first_only(tables, codes):    # wrong: only the first sub-quantiser
    return tables[:, 0, codes[:, 0]]


def _adc_mean(tables, codes):          # wrong: average instead of sum
    return sum(tables[:, j, codes[:, j]] for j in range(codes.shape[1])) / codes.shape[1]


@exercise("08.2", answer="adc_distances", wrong=(_adc_first_only, _adc_mean), writes_code=True)
def check_adc(fn) -> str:
    """Check exercise 08.2: the learner's ADC distances (Jégou et al. 2011 §III.A) against distances to decoded vectors."""
    x, q = clustered_vectors(600, 16, n_clusters=8, n_queries=3, seed=1)
    pq = ProductQuantizer(16, 4, nbits=4)
    pq.train(x, niter=5)
    codes = pq.encode(x)
    tables = pq.distance_tables(q, "l2")
    got = np.asarray(fn(tables, codes))
    assert got.shape == (3, 600), f"expected (nq, N) = (3, 600), got {got.shape}"
    want = ((q[:, None] - pq.decode(codes)[None]) ** 2).sum(-1)
    assert np.allclose(got, want, atol=1e-4), "ADC must equal the squared distance from q to the decoded vector"
    return "m 次查表相加 = 到解码向量的距离，无需解码、无需乘法。"


def _rrf_scores(rankings, k=60):       # wrong: sums 1/rank without the constant k
    return reciprocal_rank_fusion(rankings, k=0)


def _rrf_first_list(rankings, k=60):   # wrong: ignores every ranking but the first
    return reciprocal_rank_fusion(list(rankings)[:1], k=k)


@exercise("08.3", answer="rrf", wrong=(_rrf_scores, _rrf_first_list), writes_code=True)
def check_rrf(fn) -> str:
    """Check exercise 08.3: the learner's reciprocal rank fusion (Cormack et al. 2009) against ``reciprocal_rank_fusion``."""
    rankings = [["a", "b", "c", "d"], ["d", "c", "e"], ["c", "a"]]
    got = list(fn(rankings, 60))
    want = reciprocal_rank_fusion(rankings, 60)
    assert [i for i, _ in got] == [i for i, _ in want], f"order {[i for i, _ in got]}, expected {[i for i, _ in want]}"
    assert np.allclose([s for _, s in got], [s for _, s in want]), "scores must be Σ 1/(k + rank), ranks from 1"
    return "RRF 只看名次，BM25 分数和余弦分数不用先校准。"
