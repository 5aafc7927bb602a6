"""IVF-PQ (Jégou et al. 2011, §IV "IVFADC"): IVF cells holding PQ codes of the *residual* ``x − c``.

Scores inside a cell with ADC (asymmetric distance computation):

- inner product: ``q·x ≈ q·c + Σ_j T[q, j, code_j]`` with ``T[q, j, c] = q_j · book_j[c]``, one table
  per query shared by all cells;
- squared L2: ``‖q − x‖² ≈ ‖q − c‖² + Σ_j (C[cell, j, code_j] − 2 T[q, j, code_j])`` with the per-cell
  table ``C[cell, j, c] = ‖book_j[c]‖² + 2 c_j · book_j[c]`` computed once after training (faiss'
  "precomputed tables", ``IndexIVFPQ.use_precomputed_table``).

Two scan kernels give the same scores: ``kernel="numba"`` (the default) is
:func:`course_lib.vectordb.adc_scan.adc_scan`, a compiled loop over queries → probed cells → codes
with the table lookups and a k-heap fused, as faiss' ``IndexIVFPQ::search_preassigned`` /
``IVFPQScanner::scan_codes`` does; ``kernel="torch"`` is the array formulation, kept as the reference
the compiled one is tested against. The torch kernel is vectorised over a query batch with no Python
loop over cells or queries: the codes are packed cell after cell into one ``(N, m)`` array; each
query's probed cells become one run of row numbers; the codes at those rows index the tables (one
``embedding_bag``), scores go into a padded ``(B, W)`` buffer and one top-k picks the answer.
``q·c`` / ``‖q − c‖²`` come for free from the coarse search that chose the cells.

``keep_vectors=True`` also stores the raw vectors so ``search(..., rerank=R)`` can re-score the best
``R·k`` ADC candidates exactly (faiss ``IndexRefineFlat``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.vectordb.adc_scan import adc_scan
from course_lib.vectordb.checks import as_vectors, check_positive, check_search_k
from course_lib.vectordb.flat import exact_search
from course_lib.vectordb.ivf import InvertedFile
from course_lib.vectordb.kmeans import assign
from course_lib.vectordb.pq import ProductQuantizer


class IVFPQIndex(InvertedFile):
    """Inverted file with product-quantised residuals (Jégou et al. 2011 §IV IVFADC; faiss IndexIVFPQ)."""
    def __init__(self, dim: int, nlist: int, m: int, nbits: int = 8, metric: str = "ip", keep_vectors: bool = False,
                 kernel: str = "numba"):
        super().__init__(dim, nlist, metric)
        if kernel not in ("numba", "torch"):
            raise ValueError(f"kernel must be 'numba' or 'torch', got {kernel!r}")
        self.kernel = kernel
        self.pq = ProductQuantizer(dim, m, nbits)
        self.vectors = np.zeros((0, dim), np.float32) if keep_vectors else None
        self._pack: tuple | None = None         # packed codes, rebuilt after add()
        self._cell_tables: torch.Tensor | None = None
        self._work = torch.empty(0, dtype=torch.int32)   # lookup indices, reused across batches

    def _residuals(self, x: np.ndarray, cells: np.ndarray) -> np.ndarray:
        return x - self.centroids[cells]

    def _train_codec(self, x):
        self.pq.train(self._residuals(x, assign(x, self.centroids, self.metric)))
        books = self.pq.codebooks                                                  # (m, ksub, dsub)
        c = self.centroids.reshape(self.nlist, self.pq.m, 1, self.pq.dsub)         # (nlist, m, 1, dsub)
        cell = (books ** 2).sum(-1)[None] + 2 * (c * books[None]).sum(-1)          # (nlist, m, ksub)
        self._cell_tables = torch.from_numpy(np.ascontiguousarray(cell, np.float32)).reshape(self.nlist, -1)

    def _encode(self, x, cells):
        if self.vectors is not None:
            self.vectors = np.concatenate([self.vectors, x])
        self._pack = None
        return self.pq.encode(self._residuals(x, cells))

    def _packed(self):
        """``(codes (N, m) uint8, ids (N,), cell offsets, cell sizes, codes transposed (m, N))``, cells back to back."""
        if self._pack is None:
            sizes = np.array([len(ids) for ids in self.cell_ids], np.int64)
            codes = np.concatenate([d for d in self.cell_data if d is not None] or [np.zeros((0, self.pq.m), np.uint8)])
            self._pack = (torch.from_numpy(codes), np.concatenate(self.cell_ids), np.cumsum(sizes) - sizes, sizes,
                          np.ascontiguousarray(codes.T))   # (m, N) for the compiled scan
        return self._pack

    def _lookup(self, codes: torch.Tensor, table: torch.Tensor, owner: np.ndarray) -> torch.Tensor:
        """``out[r] = Σ_j table[owner[r], j, codes[r, j]]`` for ``table`` ``(T, m·ksub)``: one ``embedding_bag``.

        Indices are int32 (flat position ``owner·m·ksub + j·ksub + code``) written into a work buffer
        kept between calls: building the index is half the work, and a fresh multi-MB tensor per batch
        (page faults) cost as much again as filling it.
        """
        width = self.pq.m * self.pq.ksub
        if self._work.numel() < codes.numel():
            self._work = torch.empty(codes.numel(), dtype=torch.int32)
        index = self._work[:codes.numel()].view(codes.shape).copy_(codes)                            # (R, m)
        index.add_(torch.arange(0, width, self.pq.ksub, dtype=torch.int32))
        index.add_(torch.from_numpy((owner * width).astype(np.int32))[:, None])
        return F.embedding_bag(index, table.reshape(-1, 1), mode="sum")[:, 0]                        # (R,)

    def _search_batch(self, q: np.ndarray, k: int, nprobe: int):
        codes, ids, offsets, sizes, codes_t = self._packed()
        coarse, probes = exact_search(self.centroids, q, nprobe, self.metric)   # (B, P): q·c or ‖q − c‖²
        if self.kernel == "numba":
            tables = self.pq.distance_tables(q, "ip")                     # (B, m, ksub)
            cell = None if self.metric == "ip" else self._cell_tables.numpy().reshape(self.nlist, self.pq.m, -1)
            return adc_scan(codes_t, ids, offsets, sizes, probes, coarse, tables, cell, k)
        nq = q.shape[0]
        # every probed (query, cell) pair is one run of packed rows; the runs back to back, query after query
        lens = sizes[probes].ravel()                                      # (B·P,) run lengths
        total = int(lens.sum())
        run_start = np.cumsum(lens) - lens
        rows = np.repeat((offsets[probes].ravel() - run_start).astype(np.int32), lens) + np.arange(total, dtype=np.int32)
        cand = codes.index_select(0, torch.from_numpy(rows))              # (R, m) uint8 codes of every candidate
        table = torch.from_numpy(self.pq.distance_tables(q, "ip")).reshape(nq, -1)   # (B, m·ksub)
        query = np.repeat(np.arange(nq).repeat(nprobe), lens)             # (R,) the query a candidate belongs to
        adc = self._lookup(cand, table, query)                            # (R,) Σ_j q_j · book_j[code_j]
        if self.metric == "l2":                                           # ‖q−c−r‖² = ‖q−c‖² − 2q·r + (‖r‖² + 2c·r)
            adc.mul_(-2).add_(self._lookup(cand, self._cell_tables, np.repeat(probes.ravel(), lens)))
        adc.add_(torch.from_numpy(np.repeat(coarse.ravel(), lens)))       # + q·c or ‖q − c‖²
        # scatter each query's candidates into a row of a padded (B, W) buffer; one top-k
        per_query = lens.reshape(nq, nprobe).sum(1)
        width = max(int(per_query.max()), k)
        dest = np.arange(total) + np.repeat(np.arange(nq) * width - (np.cumsum(per_query) - per_query), per_query)
        dest = torch.from_numpy(dest)
        buf = torch.full((nq * width,), -np.inf if self.metric == "ip" else np.inf)
        buf.index_copy_(0, dest, adc)
        buf_rows = torch.full((nq * width,), -1, dtype=torch.int32).index_copy_(0, dest, torch.from_numpy(rows))
        top = buf.reshape(nq, width).topk(k, dim=1, largest=self.metric == "ip")   # (B, k)
        at = buf_rows.reshape(nq, width).gather(1, top.indices).numpy()
        return top.values.numpy(), np.where(at >= 0, ids[at], -1)

    def search(self, q, k: int, nprobe: int = 1, rerank: int | None = None, batch: int = 128):
        """ADC top-``k``; with ``rerank=R`` take the ADC top ``R·k`` and re-score them exactly."""
        if rerank is None:
            return super().search(q, k, nprobe, batch)
        if self.vectors is None:
            raise ValueError("rerank needs the raw vectors: build the index with keep_vectors=True")
        rerank = check_positive(rerank, "rerank")
        q = as_vectors(q, self.dim, "q")
        k = check_search_k(k, self.ntotal)
        _, cand = super().search(q, min(k * rerank, self.ntotal), nprobe, batch)   # (nq, R·k)
        scores = np.empty((q.shape[0], k), np.float32)
        ids = np.empty((q.shape[0], k), np.int64)
        base = torch.from_numpy(self.vectors)
        for start in range(0, q.shape[0], batch):
            cands, qt = torch.from_numpy(cand[start:start + batch]), torch.from_numpy(q[start:start + batch])
            vec = base[cands.clamp(min=0)]                                         # (B, R·k, d)
            sim = torch.einsum("bd,bcd->bc", qt, vec)                              # (B, R·k)
            score = sim if self.metric == "ip" else (qt * qt).sum(1, keepdim=True) - 2 * sim + (vec * vec).sum(-1)
            score.masked_fill_(cands < 0, -np.inf if self.metric == "ip" else np.inf)
            top = score.topk(k, dim=1, largest=self.metric == "ip")
            found = cands.gather(1, top.indices)
            scores[start:start + batch] = torch.where(found >= 0, top.values, float("nan")).numpy()
            ids[start:start + batch] = found.numpy()
        return scores, ids
