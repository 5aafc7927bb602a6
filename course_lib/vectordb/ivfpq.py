"""IVF-PQ (Jégou et al. 2011, §IV "IVFADC"): IVF cells holding PQ codes of the *residual* ``x − c``.

Scores inside a cell with ADC:

- inner product: ``q·x ≈ q·c + Σ_j T_ip[q, j, code_j]`` — one table per query, shared by all cells;
- squared L2: ``‖q − x‖² ≈ Σ_j ‖(q − c)_j − codebook_j[code_j]‖²`` — one table per (query, cell).

``keep_vectors=True`` also stores the raw vectors so ``search(..., rerank=R)`` can re-score the best
``R·k`` ADC candidates exactly (faiss ``IndexRefineFlat``).
"""

from __future__ import annotations

import numpy as np

from course_lib.vectordb.checks import as_vectors, check_k, check_positive
from course_lib.vectordb.flat import exact_search
from course_lib.vectordb.ivf import InvertedFile
from course_lib.vectordb.kmeans import assign
from course_lib.vectordb.pq import ProductQuantizer


class IVFPQIndex(InvertedFile):
    def __init__(self, dim: int, nlist: int, m: int, nbits: int = 8, metric: str = "ip", keep_vectors: bool = False):
        super().__init__(dim, nlist, metric)
        self.pq = ProductQuantizer(dim, m, nbits)
        self.vectors = np.zeros((0, dim), np.float32) if keep_vectors else None

    def _residuals(self, x: np.ndarray, cells: np.ndarray) -> np.ndarray:
        return x - self.centroids[cells]

    def _train_codec(self, x):
        self.pq.train(self._residuals(x, assign(x, self.centroids, self.metric)))

    def _encode(self, x, cells):
        if self.vectors is not None:
            self.vectors = np.concatenate([self.vectors, x])
        return self.pq.encode(self._residuals(x, cells))

    def _prepare_queries(self, q):
        return q, (self.pq.distance_tables(q, "ip") if self.metric == "ip" else None)

    def _cell_scores(self, state, qi, cell):
        q, ip_tables = state
        codes, c = self.cell_data[cell], self.centroids[cell]
        if self.metric == "ip":
            return (q[qi] @ c)[:, None] + ProductQuantizer.adc(ip_tables[qi], codes)
        return ProductQuantizer.adc(self.pq.distance_tables(q[qi] - c, "l2"), codes)

    def search(self, q, k: int, nprobe: int = 1, rerank: int | None = None, batch: int = 128):
        """ADC top-``k``; with ``rerank=R`` take the ADC top ``R·k`` and re-score them exactly."""
        if rerank is None:
            return super().search(q, k, nprobe, batch)
        if self.vectors is None:
            raise ValueError("rerank needs the raw vectors: build the index with keep_vectors=True")
        rerank = check_positive(rerank, "rerank")
        q = as_vectors(q, self.dim, "q")
        k = check_k(k, self.ntotal)
        _, cand = super().search(q, min(k * rerank, self.ntotal), nprobe, batch)   # (nq, R·k)
        scores = np.empty((q.shape[0], k), np.float32)
        ids = np.empty((q.shape[0], k), np.int64)
        for row, (query, cands) in enumerate(zip(q, cand)):
            cands = cands[cands >= 0]
            s, i = exact_search(self.vectors[cands], query, min(k, len(cands)), self.metric)
            scores[row], ids[row] = np.nan, -1
            scores[row, :s.shape[1]], ids[row, :s.shape[1]] = s[0], cands[i[0]]
        return scores, ids
