"""A compiled (numba) IVF-PQ scan: table lookups and a top-k heap fused in one loop, no candidate arrays.

What it mirrors: faiss' IVF-PQ search (``IndexIVFPQ::search_preassigned`` in ``faiss/IndexIVFPQ.cpp``,
via ``IndexIVF::search_preassigned``) loops query → probed list → code, and its
``IVFPQScanner::scan_codes`` scores one code as ``dis0 + Σ_j sim_table[j·ksub + code_j]`` (the
``PQDistanceComputer`` / ``distance_single_code`` path with ``by_residual`` and precomputed tables),
pushing the result into a k-sized heap (``maxheap_replace_top`` / ``minheap_replace_top``). Nothing is
materialised per candidate: no index arrays, no score buffer. The torch path of
:class:`course_lib.vectordb.ivfpq.IVFPQIndex` builds exactly those arrays and pays ~8 ns per lookup
for them (docs/NOTES.md, h15vec); here a lookup is one load from a table that stays in L1/L2.

Scores equal the torch path's bit for bit: every sum is accumulated in float32 in the same order
(``s = Σ_j T[j, code_j]`` left to right as ``embedding_bag(mode="sum")`` does, then L2
``s·(−2) + Σ_j C[cell, j, code_j]``, then ``+ dis0``); ``fastmath`` is off so nothing is reordered.
Only ties may come out in another order (``torch.topk`` does not define its tie order).

Compilation: ``cache=True`` when numba finds a writable cache folder (next to this file, else the
user cache); on a read-only install without one, it compiles once per process (~1–2 s, on the first
call; the benchmark's warm-up call absorbs it).
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _jit(fn):
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:     # "cannot cache function ...: no locator available" (read-only, no user cache)
        return njit(cache=False, nogil=True)(fn)


@_jit
def _scan(codes, ids, offsets, sizes, probes, dis0, tables, cell_tables, l2, k):  # pragma: no cover - compiled
    nq, nprobe = probes.shape
    m = codes.shape[1]
    out_scores = np.empty((nq, k), np.float32)
    out_ids = np.full((nq, k), -1, np.int64)
    heap_key = np.empty(k, np.float32)      # min-heap on key (IP: score, L2: −distance); root = worst kept
    heap_row = np.empty(k, np.int64)
    minus_two = np.float32(-2.0)
    for b in range(nq):
        heap_key[:] = -np.inf
        heap_row[:] = -1
        for p in range(nprobe):
            cell = probes[b, p]
            d0 = dis0[b, p]
            for r in range(offsets[cell], offsets[cell] + sizes[cell]):
                s = np.float32(0.0)
                for j in range(m):
                    s += tables[b, j, codes[r, j]]
                if l2:
                    c = np.float32(0.0)
                    for j in range(m):
                        c += cell_tables[cell, j, codes[r, j]]
                    key = -((s * minus_two + c) + d0)
                else:
                    key = s + d0
                if key > heap_key[0]:             # replace the root, sift down
                    i = 0
                    while True:
                        child = 2 * i + 1
                        if child >= k:
                            break
                        if child + 1 < k and heap_key[child + 1] < heap_key[child]:
                            child += 1
                        if heap_key[child] >= key:
                            break
                        heap_key[i] = heap_key[child]
                        heap_row[i] = heap_row[child]
                        i = child
                    heap_key[i] = key
                    heap_row[i] = r
        # best first: insertion sort on (key descending, packed row ascending)
        for i in range(1, k):
            kk, rr = heap_key[i], heap_row[i]
            j = i - 1
            while j >= 0 and (heap_key[j] < kk or (heap_key[j] == kk and heap_row[j] > rr)):
                heap_key[j + 1] = heap_key[j]
                heap_row[j + 1] = heap_row[j]
                j -= 1
            heap_key[j + 1] = kk
            heap_row[j + 1] = rr
        for i in range(k):
            out_scores[b, i] = -heap_key[i] if l2 else heap_key[i]
            if heap_row[i] >= 0:
                out_ids[b, i] = ids[heap_row[i]]
    return out_scores, out_ids


def adc_scan(codes: np.ndarray, ids: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, probes: np.ndarray,
             dis0: np.ndarray, tables: np.ndarray, cell_tables: np.ndarray | None, k: int):
    """Top-``k`` ``(scores (B, k) float32, ids (B, k) int64)`` of an IVF-PQ scan, best first.

    ``codes (N, m) uint8`` and ``ids (N,)``: every cell's codes back to back, cell ``c`` at rows
    ``offsets[c] : offsets[c] + sizes[c]``; ``probes (B, P)`` the cells each query scans and ``dis0 (B, P)``
    their coarse term (``q·c`` or ``‖q − c‖²``); ``tables (B, m, ksub)`` the queries' inner-product ADC
    tables; ``cell_tables (nlist, m, ksub)`` for L2 (``‖r‖² + 2c·r`` terms; ``None`` for inner product,
    which ranks by largest score; L2 ranks by smallest distance). A query that sees fewer than ``k``
    codes gets ids −1 and scores −inf (IP) / +inf (L2) in the remaining slots.
    """
    if codes.dtype != np.uint8 or codes.ndim != 2:
        raise TypeError(f"codes must be a 2-D uint8 array, got {codes.dtype} with shape {codes.shape}")
    if tables.ndim != 3 or tables.shape[1] != codes.shape[1] or tables.shape[0] != probes.shape[0]:
        raise ValueError(f"tables {tables.shape} do not match codes {codes.shape} and probes {probes.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    l2 = cell_tables is not None
    cell = np.ascontiguousarray(cell_tables if l2 else np.zeros((1, *tables.shape[1:])), np.float32)
    return _scan(np.ascontiguousarray(codes), np.ascontiguousarray(ids, np.int64),
                 np.ascontiguousarray(offsets, np.int64), np.ascontiguousarray(sizes, np.int64),
                 np.ascontiguousarray(probes, np.int64), np.ascontiguousarray(dis0, np.float32),
                 np.ascontiguousarray(tables, np.float32), cell, l2, int(k))
