"""The compiled (numba) HNSW: build and search as loops over a flat link table, after hnswlib.

What it mirrors: hnswlib's ``HierarchicalNSW`` (``hnswlib/hnswalg.h``): ``searchBaseLayer`` /
``searchBaseLayerST`` (beam search with a candidate min-heap, a result max-heap and a visited list
reset by bumping a tag, ``VisitedList::curV``), ``getNeighborsByHeuristic2`` (Alg. 4) and
``mutuallyConnectNewElement`` (link both ways, re-prune a full list). Statement for statement these
are the Python methods of :class:`course_lib.vectordb.hnsw.HNSWIndex` (the reference they are tested
against); both paths build the same graph and return the same ids and distances, bit for bit.

Why bit for bit: one distance, :func:`distance`, serves the search and the neighbour heuristic (as
hnswlib's ``fstdistfunc_`` does), so a tie between two exact copies stays a tie. It sums in float32
over ``LANES`` interleaved lanes (lane ``l`` adds coordinates ``l, l + LANES, …`` in order), then
halves the lanes pairwise (``a[l] + a[l + w]``, w = 16, 8, 4, 2, 1): the same order as
``hnsw.lane_distance`` in NumPy, and vector-friendly (hnswlib's AVX kernels also keep 16 float32
partial sums side by side; 32 lanes fill LLVM's four-register ymm loop body in one pass, 16 fell
to its 4-wide tail: ≈ 10 % slower search). ``fastmath`` is off, so LLVM keeps that order. Vectors
are stored zero-padded to a multiple of ``LANES``; the zeros add nothing.

Memory: as hnswlib does with ``_mm_prefetch``, the search asks for each fresh neighbour's vector
(:func:`course_lib.vectordb.jit.prefetch`) before computing any of their distances; on 10k × 64
clustered vectors this took search from ≈ 0.54× to ≈ 0.75× hnswlib's QPS (CPU time, ef 16).

Order: closer first, and among exactly equal distances the newer node (larger id) first, as hnswlib's
candidate queues pop them; every heap is lexicographic on ``(d, −id)`` (or ``(−d, id)`` for the
results, whose root is the worst kept), so the compiled and Python heaps (``heapq`` on tuples) pop
the same pair at every step. The tie order is not cosmetic: on a set of 400 vectors × 5 exact copies
(M 8, ef 16) linking the newest copy first gives recall@10 0.944 (hnswlib 0.954), the oldest 0.923.
Graph layout: node ``v`` owns rows ``first_row[v] … first_row[v] + level[v]`` of ``links (R, M0)``,
one per layer, with ``deg[row]`` links used.
"""

from __future__ import annotations

import numpy as np

from course_lib.vectordb.jit import compiled, prefetch

LANES = 32


@compiled(inline=True)
def distance(data, a, q, l2, acc):  # pragma: no cover - compiled
    """``‖data[a] − q‖²`` (``l2``) or ``1 − data[a]·q`` of padded float32 rows; ``acc`` a ``(LANES,)`` scratch.

    Indices are unsigned (no negative-index wrap-around test, so the lane loop vectorises) and the lane
    count is read at run time (a constant 16 would be unrolled into scalar code: numba's SLP
    vectoriser is off).
    """
    lanes, a, end = np.uint64(acc.shape[0]), np.uint64(a), np.uint64(q.shape[0])
    for i in range(lanes):                     # the first block sets the lanes, the others add to them
        t = data[a, i] - q[i] if l2 else data[a, i]
        acc[i] = t * t if l2 else t * q[i]
    j = lanes
    while j < end:
        if l2:
            for i in range(lanes):
                t = data[a, j + i] - q[j + i]
                acc[i] += t * t
        else:
            for i in range(lanes):
                acc[i] += data[a, j + i] * q[j + i]
        j += lanes
    w = lanes // np.uint64(2)
    while w >= np.uint64(1):
        for i in range(w):
            acc[i] = acc[i] + acc[i + w]
        w //= np.uint64(2)
    return acc[0] if l2 else np.float32(1.0) - acc[0]


@compiled(inline=True)
def _push(keys, vals, n, key, val):  # pragma: no cover - compiled
    """Add ``(key, val)`` to the min-heap ``keys[:n], vals[:n]`` (lexicographic); return the new size."""
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] < key or (keys[parent] == key and vals[parent] < val):
            break
        keys[i], vals[i] = keys[parent], vals[parent]
        i = parent
    keys[i], vals[i] = key, val
    return n + 1


@compiled(inline=True)
def _pop(keys, vals, n):  # pragma: no cover - compiled
    """Drop the root of the min-heap ``keys[:n], vals[:n]``; return the new size."""
    n -= 1
    key, val = keys[n], vals[n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        c2 = child + 1
        if c2 < n and (keys[c2] < keys[child] or (keys[c2] == keys[child] and vals[c2] < vals[child])):
            child = c2
        if key < keys[child] or (key == keys[child] and val < vals[child]):
            break
        keys[i], vals[i] = keys[child], vals[child]
        i = child
    keys[i], vals[i] = key, val
    return n


@compiled
def _greedy(data, links, deg, first_row, q, node, layer, l2, acc):  # pragma: no cover - compiled
    """Move to the closest neighbour while that gets closer (Alg. 2 with ef = 1)."""
    best = distance(data, node, q, l2, acc)
    moved = True
    while moved:
        moved = False
        row = first_row[node] + layer
        for t in range(deg[row]):
            n = links[row, t]
            d = distance(data, n, q, l2, acc)
            if d < best:
                best, node, moved = d, n, True
    return node


@compiled
def _search_layer(data, links, deg, first_row, q, entry, ef, layer, l2, s):  # pragma: no cover - compiled
    """Beam search (Alg. 2); the ``m`` best land in ``s[2][:m], s[3][:m]`` ordered by ``(d, −id)``."""
    tags, acc, ck, cv, bk, bv, fresh_d, fresh_i = s
    tag = tags[-1] + 1                        # a fresh "visited" mark: nothing to clear
    tags[-1] = tag
    d0 = distance(data, entry, q, l2, acc)
    tags[entry] = tag
    nc = _push(ck, cv, 0, d0, -entry)         # candidates: min-heap on (d, −id)
    nb = _push(bk, bv, 0, -d0, entry)         # results: min-heap on (−d, id), root = the worst kept
    while nc > 0:
        d, node = ck[0], -cv[0]
        nc = _pop(ck, cv, nc)
        if d > -bk[0] and nb >= ef:
            break                             # closest candidate is worse than the worst kept
        row, m = first_row[node] + layer, 0
        for t in range(deg[row]):             # unvisited neighbours first, then their distances in a tight
            n = links[row, t]                 # loop (no heap branches between the row loads), then the heaps
            if tags[n] != tag:
                tags[n] = tag
                fresh_i[m] = n
                m += 1
                for c in range(0, data.shape[1], 16):   # 16 float32 = one 64-byte cache line
                    prefetch(data, n, c)
        for t in range(m):
            fresh_d[t] = distance(data, fresh_i[t], q, l2, acc)
        for t in range(m):
            n, dn = fresh_i[t], fresh_d[t]
            if nb < ef or dn < -bk[0]:
                nc = _push(ck, cv, nc, dn, -n)
                nb = _push(bk, bv, nb, -dn, n)
                if nb > ef:
                    nb = _pop(bk, bv, nb)
    m = nb
    out_d, out_i = ck[:m], cv[:m]             # the candidate heap is done: reuse it for the sorted output
    for i in range(m - 1, -1, -1):            # the root is the worst: fill from the back
        out_d[i], out_i[i] = -bk[0], bv[0]
        nb = _pop(bk, bv, nb)
    return m


@compiled
def _select(data, cand_d, cand_i, n, M, l2, acc, kept):  # pragma: no cover - compiled
    """Heuristic of Alg. 4 on candidates sorted by ``(d, −id)``: keep one only if no kept node is closer to it."""
    if n < M:
        kept[:n] = cand_i[:n]
        return n
    m = 0
    for i in range(n):
        if m >= M:
            break
        good, q = True, data[cand_i[i]]
        for j in range(m):
            if distance(data, kept[j], q, l2, acc) < cand_d[i]:
                good = False
                break
        if good:
            kept[m] = cand_i[i]
            m += 1
    return m


@compiled
def _scratch(n_nodes, cap, max_links):  # pragma: no cover - compiled
    """Visited tags (last slot: the current tag), lane accumulator, candidate heap, result heap, fresh neighbours."""
    return (np.zeros(n_nodes + 1, np.int32), np.empty(LANES, np.float32), np.empty(n_nodes + 1, np.float32),
            np.empty(n_nodes + 1, np.int64), np.empty(cap + 2, np.float32), np.empty(cap + 2, np.int64),
            np.empty(max_links, np.float32), np.empty(max_links, np.int64))


@compiled
def build(data, links, deg, first_row, levels, start, entry, max_level, M, efc, l2):  # pragma: no cover - compiled
    """Insert nodes ``start … N−1`` (Alg. 1) into the link table in place; return ``(entry, max_level)``."""
    s = _scratch(data.shape[0], max(efc, links.shape[1] + 1), links.shape[1])
    acc = s[1]
    kept, pool_d, pool_i = np.empty(links.shape[1] + 1, np.int64), np.empty(links.shape[1] + 1, np.float32), \
        np.empty(links.shape[1] + 1, np.int64)
    for node in range(start, data.shape[0]):
        level, q = levels[node], data[node]
        if entry < 0:
            entry, max_level = node, level
            continue
        cur = entry
        for layer in range(max_level, level, -1):
            cur = _greedy(data, links, deg, first_row, q, cur, layer, l2, acc)
        for layer in range(min(level, max_level), -1, -1):
            m = _search_layer(data, links, deg, first_row, q, cur, efc, layer, l2, s)
            c = _select(data, s[2], s[3], m, M, l2, acc, kept)
            row = first_row[node] + layer
            links[row, :c] = kept[:c]
            deg[row] = c
            limit = links.shape[1] if layer == 0 else M
            for t in range(c):
                nb = links[row, t]
                nrow = first_row[nb] + layer
                k = deg[nrow]
                if k < limit:
                    links[nrow, k] = node
                    deg[nrow] = k + 1
                    continue
                pool_i[:k] = links[nrow, :k]      # full: re-prune its list together with the new node
                pool_i[k] = node
                for j in range(k + 1):
                    pool_d[j] = distance(data, pool_i[j], data[nb], l2, acc)
                for j in range(1, k + 1):         # insertion sort by (d, −id)
                    dj, ij, i = pool_d[j], pool_i[j], j - 1
                    while i >= 0 and (pool_d[i] > dj or (pool_d[i] == dj and pool_i[i] < ij)):
                        pool_d[i + 1], pool_i[i + 1] = pool_d[i], pool_i[i]
                        i -= 1
                    pool_d[i + 1], pool_i[i + 1] = dj, ij
                deg[nrow] = _select(data, pool_d, pool_i, k + 1, limit, l2, acc, pool_i)  # in place: kept[m], m ≤ i
                links[nrow, :deg[nrow]] = pool_i[:deg[nrow]]
            cur = links[row, 0]
        if level > max_level:
            entry, max_level = node, level
    return entry, max_level


@compiled
def search(data, links, deg, first_row, entry, max_level, queries, k, ef, l2):  # pragma: no cover - compiled
    """Top-``k`` ``(distances (B, k) float32, ids (B, k) int64)``: greedy descent, then a beam of ``ef`` on layer 0."""
    s = _scratch(data.shape[0], ef, links.shape[1])
    out_d = np.empty((queries.shape[0], k), np.float32)
    out_i = np.empty((queries.shape[0], k), np.int64)
    for b in range(queries.shape[0]):
        q, cur = queries[b], entry
        for layer in range(max_level, 0, -1):
            cur = _greedy(data, links, deg, first_row, q, cur, layer, l2, s[1])
        _search_layer(data, links, deg, first_row, q, cur, ef, 0, l2, s)
        out_d[b], out_i[b] = s[2][:k], s[3][:k]
    return out_d, out_i
