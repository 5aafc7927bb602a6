"""Product quantisation (Jégou, Douze, Schmid 2011, "Product quantization for nearest neighbor search").

Split a ``d``-vector into ``m`` sub-vectors of ``d/m`` dims, run k-means with ``2**nbits`` centroids in
each subspace, and store a vector as ``m`` centroid indices (``m`` bytes at 8 bits). Asymmetric
distance computation (ADC, §III.A): the query stays exact; per query build a table
``T[j, c] = dist(q_j, codebook[j, c])`` of shape ``(m, 2**nbits)``, and a code's distance is a sum of
``m`` table lookups — no decoding, no multiply.
"""

from __future__ import annotations

import numpy as np

from course_lib.vectordb.checks import as_vectors, check_metric, check_positive
from course_lib.vectordb.kmeans import kmeans


class ProductQuantizer:
    """Product quantiser with ADC tables (Jégou, Douze & Schmid 2011; faiss ProductQuantizer)."""
    def __init__(self, dim: int, m: int, nbits: int = 8):
        self.dim, self.m = check_positive(dim, "dim"), check_positive(m, "m")
        if dim % m:
            raise ValueError(f"dim={dim} must be divisible by the number of sub-quantisers m={m}")
        if not 1 <= nbits <= 8:
            raise ValueError(f"nbits must be in 1..8 (codes are uint8), got {nbits}")
        self.nbits, self.ksub, self.dsub = nbits, 2 ** nbits, dim // m
        self.codebooks: np.ndarray | None = None            # (m, ksub, dsub)

    def _split(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], self.m, self.dsub)     # (N, m, dsub)

    def train(self, x, niter: int = 25, seed: int = 0) -> None:
        x = self._split(as_vectors(x, self.dim))
        self.codebooks = np.stack([kmeans(x[:, j], self.ksub, niter, "l2", seed=seed + j) for j in range(self.m)])

    def _trained(self) -> np.ndarray:
        if self.codebooks is None:
            raise ValueError("train the product quantiser first")
        return self.codebooks

    def encode(self, x) -> np.ndarray:
        """``(N, m)`` uint8 codes: the nearest sub-centroid in every subspace."""
        books, x = self._trained(), self._split(as_vectors(x, self.dim))
        codes = np.empty((x.shape[0], self.m), np.uint8)
        for j in range(self.m):
            sub = x[:, j]                                                  # (N, dsub)
            dist = (books[j] ** 2).sum(1)[None, :] - 2 * sub @ books[j].T  # (N, ksub), ‖sub‖² dropped
            codes[:, j] = dist.argmin(1)
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        books = self._trained()
        return books[np.arange(self.m)[None, :], codes].reshape(codes.shape[0], self.dim)  # (N, d)

    def distance_tables(self, q, metric: str = "l2") -> np.ndarray:
        """ADC tables ``(nq, m, ksub)``: squared L2 (``l2``) or inner product (``ip``) of each sub-query with each sub-centroid."""
        check_metric(metric)
        books, q = self._trained(), self._split(as_vectors(q, self.dim, "q"))
        ip = np.empty((q.shape[0], self.m, self.ksub), np.float32)                       # (nq, m, ksub)
        for j in range(self.m):          # one GEMM per subspace (as faiss' compute_inner_prod_tables):
            np.matmul(q[:, j], books[j].T, out=ip[:, j])   # 1.5x faster than one batched matmul, same bits
        if metric == "ip":
            return ip
        return (q ** 2).sum(2)[:, :, None] - 2 * ip + (books ** 2).sum(2)[None]

    @staticmethod
    def adc(tables: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Sum of table lookups: ``out[q, n] = Σ_j tables[q, j, codes[n, j]]``, shape ``(nq, N)``."""
        out = np.zeros((tables.shape[0], codes.shape[0]), np.float32)
        for j in range(codes.shape[1]):
            out += tables[:, j, codes[:, j]]
        return out
