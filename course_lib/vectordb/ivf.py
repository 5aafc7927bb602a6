"""Inverted file index (IVF): k-means cells, search only the ``nprobe`` nearest cells (Jégou et al. 2011, §III.A).

``IVFFlatIndex`` stores raw vectors in each cell (faiss ``IndexIVFFlat``). The search is vectorised
over a query batch: every probed (query, cell) pair writes its scores into a padded
``(B, nprobe, longest cell)`` buffer, grouped by cell so each cell costs one small GEMM, then one
top-k over the buffer gives every query's answer. :class:`InvertedFile` holds what IVF-Flat and
IVF-PQ share: the coarse quantiser, the cells and this search loop.
"""

from __future__ import annotations

import numpy as np
import torch

from course_lib.vectordb.checks import as_vectors, check_metric, check_positive, check_search_k
from course_lib.vectordb.flat import exact_search
from course_lib.vectordb.kmeans import assign, kmeans


class InvertedFile:
    """Coarse quantiser + one list per cell; subclasses define what a cell stores and how it scores."""

    def __init__(self, dim: int, nlist: int, metric: str = "ip"):
        self.dim, self.nlist, self.metric = check_positive(dim, "dim"), check_positive(nlist, "nlist"), check_metric(metric)
        self.centroids: np.ndarray | None = None
        self.cell_ids = [np.zeros(0, np.int64) for _ in range(self.nlist)]
        self.cell_data: list[np.ndarray | None] = [None] * self.nlist
        self.ntotal = 0

    @property
    def is_trained(self) -> bool:
        return self.centroids is not None

    def train(self, x, niter: int = 25, seed: int = 0) -> None:
        x = as_vectors(x, self.dim)
        self.centroids = kmeans(x, self.nlist, niter, self.metric, spherical=self.metric == "ip", seed=seed)
        self._train_codec(x)

    def _train_codec(self, x: np.ndarray) -> None:
        """Train what encodes vectors inside a cell (nothing for IVF-Flat)."""

    def _encode(self, x: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """What a cell stores for vectors ``x`` assigned to ``cells``."""
        raise NotImplementedError

    def _prepare_queries(self, q: np.ndarray):
        """Per-batch state handed to :meth:`_cell_scores` (IVF-Flat: the queries; IVF-PQ adds tables)."""
        return q

    def _cell_scores(self, state, qi: np.ndarray, cell: int) -> np.ndarray:
        """Scores ``(len(qi), cell size)`` of batch rows ``qi`` against cell ``cell``."""
        raise NotImplementedError

    def add(self, x) -> None:
        if not self.is_trained:
            raise ValueError("train the index before add()")
        x = as_vectors(x, self.dim)
        cells = assign(x, self.centroids, self.metric)
        data = self._encode(x, cells)
        new_ids = np.arange(self.ntotal, self.ntotal + x.shape[0])
        for cell in np.unique(cells):
            rows = np.flatnonzero(cells == cell)
            old = self.cell_data[cell]
            self.cell_data[cell] = data[rows] if old is None else np.concatenate([old, data[rows]])
            self.cell_ids[cell] = np.concatenate([self.cell_ids[cell], new_ids[rows]])
        self.ntotal += x.shape[0]

    def search(self, q, k: int, nprobe: int = 1, batch: int = 128):
        """Top-``k`` over the ``nprobe`` nearest cells; ids of -1 pad a query that saw fewer than k vectors."""
        if not self.is_trained:
            raise ValueError("train the index before search()")
        q = as_vectors(q, self.dim, "q")
        k = check_search_k(k, self.ntotal)
        nprobe = min(check_positive(nprobe, "nprobe"), self.nlist)
        scores = np.empty((q.shape[0], k), np.float32)
        ids = np.empty((q.shape[0], k), np.int64)
        for start in range(0, q.shape[0], batch):
            s, i = self._search_batch(q[start:start + batch], k, nprobe)
            scores[start:start + batch], ids[start:start + batch] = s, i
        return scores, ids

    def _search_batch(self, q: np.ndarray, k: int, nprobe: int):
        probes = exact_search(self.centroids, q, nprobe, self.metric)[1]         # (B, nprobe)
        longest = max(len(self.cell_ids[c]) for c in np.unique(probes))
        worst = -np.inf if self.metric == "ip" else np.inf
        buf = np.full((q.shape[0], nprobe, max(longest, 1)), worst, np.float32)  # (B, nprobe, L)
        buf_ids = np.full(buf.shape, -1, np.int64)
        state = self._prepare_queries(q)
        flat = probes.ravel()
        order = np.argsort(flat, kind="stable")                                 # group (query, probe) by cell
        bounds = np.flatnonzero(np.diff(flat[order])) + 1
        for group in np.split(order, bounds):
            cell = int(flat[group[0]])
            size = len(self.cell_ids[cell])
            if size == 0:
                continue
            qi, pi = np.divmod(group, nprobe)
            buf[qi, pi, :size] = self._cell_scores(state, qi, cell)
            buf_ids[qi, pi, :size] = self.cell_ids[cell]
        flat_buf = torch.from_numpy(buf.reshape(q.shape[0], -1))
        top = flat_buf.topk(k, dim=1, largest=self.metric == "ip")
        ids = np.take_along_axis(buf_ids.reshape(q.shape[0], -1), top.indices.numpy(), axis=1)
        return top.values.numpy(), ids


class IVFFlatIndex(InvertedFile):
    """IVF with raw vectors in the cells (faiss ``IndexIVFFlat``)."""

    def _encode(self, x, cells):
        return x

    def _cell_scores(self, state, qi, cell):
        q, v = state[qi], self.cell_data[cell]                               # (size, d)
        sim = q @ v.T                                          # (n, size)
        if self.metric == "ip":
            return sim
        return (q * q).sum(1, keepdims=True) - 2 * sim + (v * v).sum(1)[None, :]
