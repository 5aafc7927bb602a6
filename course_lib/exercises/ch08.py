"""Exercises of chapter 08 (vector databases)."""

from __future__ import annotations

import numpy as np

from course_lib.exercises import exercise
from course_lib.vectordb.flat import exact_search
from course_lib.vectordb.hnsw import HNSWIndex
from course_lib.vectordb.hybrid import reciprocal_rank_fusion
from course_lib.vectordb.ivfpq import IVFPQIndex
from course_lib.vectordb.kmeans import assign
from course_lib.vectordb.synthetic import clustered_vectors, knn_recall


def _tombstones_post_filter(index, q, k, ef, deleted):    # wrong: ANN top-k, then drop the deleted ones
    ids = index.search(np.asarray(q)[None], k, ef=ef)[1][0]
    return [int(i) for i in ids if not deleted[i]]


def _tombstones_ignored(index, q, k, ef, deleted):        # wrong: deleted nodes still come back as answers
    return index.search(np.asarray(q)[None], k, ef=ef)[1][0]


@exercise("08.1", answer="search_with_tombstones", wrong=(_tombstones_post_filter, _tombstones_ignored),
          writes_code=True)
def check_tombstones(fn) -> str:
    """Check exercise 08.1: HNSW search that skips deleted nodes in its answers (hnswlib ``markDelete``).

    30 % of a clustered base are marked deleted; every query must return exactly ``k`` live ids, and
    their recall@k against brute force over the live points must reach 0.9.
    """
    xb, xq = clustered_vectors(2_000, 32, n_clusters=20, n_queries=40, seed=3)
    index = HNSWIndex(32, M=8, ef_construction=64, metric="ip")
    index.add(xb)
    deleted = np.random.default_rng(0).random(len(xb)) < 0.3
    live = np.flatnonzero(~deleted)
    truth = live[exact_search(xb[live], xq, 10, "ip")[1]]                  # (nq, 10)
    got = []
    for q in xq:
        ids = np.asarray(fn(index, q, 10, 64, deleted), dtype=np.int64).ravel()
        assert len(ids) == 10, f"每个查询应返回 k=10 个未删除的 id，得到 {len(ids)} 个：被跳过的点不能占用 k 个名额"
        assert not deleted[ids].any(), f"已删除的点出现在结果里：{ids[deleted[ids]].tolist()}"
        got.append(ids)
    recall = knn_recall(np.stack(got), truth)
    assert recall >= 0.9, f"对未删除点暴力搜索 (brute force) 的召回率 (recall@10) 只有 {recall:.3f}，应 ≥ 0.9"
    return f"删除 30% 的点后召回率 {recall:.3f}：墓碑点照样当路标，只是不进结果 (hnswlib 的 markDelete 也是这样)。"


def _ivfpq_raw_codes(index, x):        # wrong: quantises x itself, not its residual
    cells = assign(x, index.centroids, index.metric)
    return cells, index.pq.encode(x)


def _ivfpq_farthest_cell(index, x):    # wrong: picks the cell with the smallest inner product
    cells = (x @ index.centroids.T).argmin(1)
    return cells, index.pq.encode(x - index.centroids[cells])


@exercise("08.2", answer="ivfpq_encode", wrong=(_ivfpq_raw_codes, _ivfpq_farthest_cell), writes_code=True)
def check_ivfpq_encode(fn) -> str:
    """Check exercise 08.2: IVF-PQ codes of residuals (Jégou et al. 2011 §IV IVFADC) against what ``IVFPQIndex.add`` stores."""
    x, _ = clustered_vectors(1_500, 16, n_clusters=12, n_queries=1, seed=2)
    index = IVFPQIndex(16, 8, m=4, nbits=4, metric="ip")
    index.train(x)
    index.add(x)
    cells, codes = fn(index, x)
    cells, codes = np.asarray(cells), np.asarray(codes)
    assert cells.shape == (1_500,) and codes.shape == (1_500, 4), \
        f"cells 形状应为 (1500,)、codes 形状应为 (1500, 4)，得到 {cells.shape} 和 {codes.shape}"
    for cell in range(8):
        rows = index.cell_ids[cell]
        assert (cells[rows] == cell).all(), f"单元 (cell) {cell}：有向量被分到了别的单元"
        assert (codes[rows] == index.cell_data[cell]).all(), f"单元 (cell) {cell}：码字 (code) 与库 add() 存下的不同"
    return "IVF-PQ 量化残差 x − c：残差的范围小，同样 m 个字节误差更小。"


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
    assert [i for i, _ in got] == [i for i, _ in want], f"顺序为 {[i for i, _ in got]}，应为 {[i for i, _ in want]}"
    assert np.allclose([s for _, s in got], [s for _, s in want]), "分数应为 Σ 1/(k + rank)，名次 (rank) 从 1 开始"
    return "RRF 只看名次，BM25 分数和余弦分数不用先校准。"
