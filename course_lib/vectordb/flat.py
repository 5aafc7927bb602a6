"""Exact (brute-force) search: one batched matrix multiply and a top-k (faiss ``IndexFlatIP`` / ``IndexFlatL2``)."""

from __future__ import annotations

import numpy as np

from course_lib.vectordb.checks import as_vectors, check_metric, check_search_k


def exact_search(xb: np.ndarray, xq: np.ndarray, k: int, metric: str = "ip", batch: int = 256):
    """Top-``k`` of every query against every base vector.

    ``ip``: scores ``q·x`` (descending). ``l2``: squared distances ``‖q‖² − 2 q·x + ‖x‖²``
    (ascending), the same expansion faiss uses, so the work is one GEMM per query batch.
    Returns ``(scores, ids)``, each ``(nq, k)``.
    """
    import torch  # imported here so the store (NumPy only) starts without loading torch

    check_metric(metric)
    xb = as_vectors(xb, None, "xb")
    xq = as_vectors(xq, xb.shape[1], "xq")
    k = check_search_k(k, xb.shape[0])
    base = torch.from_numpy(xb)                                   # (N, d)
    base_sq = (base * base).sum(1) if metric == "l2" else None    # (N,)
    scores = np.empty((xq.shape[0], k), np.float32)
    ids = np.empty((xq.shape[0], k), np.int64)
    for start in range(0, xq.shape[0], batch):
        q = torch.from_numpy(xq[start:start + batch])             # (B, d)
        sim = q @ base.T                                          # (B, N)
        if metric == "ip":
            top = sim.topk(k, dim=1)
            s = top.values
        else:
            dist = base_sq[None, :] - 2 * sim                     # ‖q‖² added after the top-k
            top = dist.topk(k, dim=1, largest=False)
            s = top.values + (q * q).sum(1, keepdim=True)
        scores[start:start + batch] = s.numpy()
        ids[start:start + batch] = top.indices.numpy()
    return scores, ids


class FlatIndex:
    """Stores every vector; ``search`` is :func:`exact_search`. Ids are insertion positions."""

    def __init__(self, dim: int, metric: str = "ip"):
        self.dim, self.metric = int(dim), check_metric(metric)
        self.xb = np.zeros((0, self.dim), np.float32)

    @property
    def ntotal(self) -> int:
        return self.xb.shape[0]

    def add(self, x) -> None:
        self.xb = np.concatenate([self.xb, as_vectors(x, self.dim)])

    def search(self, q, k: int):
        return exact_search(self.xb, as_vectors(q, self.dim, "q"), k, self.metric)
