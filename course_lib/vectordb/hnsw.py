"""Hierarchical Navigable Small World graphs (Malkov & Yashunin 2018, arXiv:1603.09320), after hnswlib.

- a node's top layer is ``floor(−ln U · mL)`` with ``mL = 1/ln M`` (Alg. 1, line 4), so each layer
  holds ~1/M of the one below;
- search: greedy descent through the upper layers (one closest node per layer), then a beam search
  with a dynamic list of size ``ef`` on layer 0 (Alg. 2, SEARCH-LAYER);
- insertion: the same descent, then on each of its layers a beam search with ``ef_construction``
  and the neighbour-selection heuristic (Alg. 4): keep a candidate only if it is closer to the new
  node than to every neighbour already kept — this keeps links pointing in diverse directions;
- at most ``M`` links per node on upper layers and ``M0 = 2M`` on layer 0; a full neighbour list is
  re-pruned with the same heuristic (hnswlib ``mutuallyConnectNewElement``).

Distances follow hnswlib: squared L2 for ``l2``, ``1 − q·x`` for ``ip``, and ONE function,
:func:`lane_distance`, computes every one of them — search and heuristic alike, as hnswlib's
``fstdistfunc_`` does — so two exact copies of a vector are at exactly the same distance from a third
(a heuristic that compared distances from two formulas would drop valid neighbours on such ties).

Two kernels build the same graph and return the same ids and distances: ``kernel="numba"`` (the
default) runs build and search as compiled loops (:mod:`course_lib.vectordb.hnsw_kernels`);
``kernel="python"`` is the readable reference below, which the compiled one is tested against
(``tests/test_vectordb_hnsw.py``). Ids are insertion positions.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from course_lib.vectordb import hnsw_kernels as kernels
from course_lib.vectordb.checks import as_vectors, check_metric, check_positive, check_search_k

LANES = kernels.LANES


def lane_distance(x: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """Distances ``(n,)`` float32 of the rows of ``x (n, D)`` to ``q (D,)``, ``D`` a multiple of ``LANES``.

    Summed in float32 in a fixed order: lane ``l`` adds coordinates ``l, l + LANES, …`` left to right,
    then lanes are halved pairwise. :func:`hnsw_kernels.distance` adds the same numbers in the same order.
    """
    p = (x - q) * (x - q) if metric == "l2" else x * q              # (n, D)
    acc = p[:, :LANES]                                               # (n, LANES)
    for j in range(LANES, x.shape[1], LANES):
        acc = acc + p[:, j:j + LANES]                               # (n, LANES)
    w = LANES // 2
    while w >= 1:
        acc = acc[:, :w] + acc[:, w:2 * w]                          # (n, w)
        w //= 2
    return acc[:, 0] if metric == "l2" else np.float32(1.0) - acc[:, 0]


class HNSWIndex:
    """Hierarchical Navigable Small World graph index (Malkov & Yashunin 2018, Alg. 1–4; after hnswlib).

    Graph: node ``v`` owns rows ``first_row[v] + layer`` (layer ``0 … level[v]``) of ``links (R, M0)``,
    ``deg[row]`` of them used. ``data`` holds the vectors zero-padded to a multiple of ``LANES``.
    """

    def __init__(self, dim: int, M: int = 16, ef_construction: int = 200, metric: str = "ip", seed: int = 100,
                 kernel: str = "numba"):
        self.dim, self.metric = check_positive(dim, "dim"), check_metric(metric)
        self.M = check_positive(M, "M")
        if self.M < 2:
            raise ValueError(f"M must be at least 2 (mL = 1/ln M), got {M}")
        if kernel not in ("numba", "python"):
            raise ValueError(f"kernel must be 'numba' or 'python', got {kernel!r}")
        self.kernel = kernel
        self.M0, self.mL = 2 * self.M, 1.0 / math.log(self.M)
        self.ef_construction = check_positive(ef_construction, "ef_construction")
        self.rng = np.random.default_rng(seed)
        self.data = np.zeros((0, -(-self.dim // LANES) * LANES), np.float32)
        self.level = np.zeros(0, np.int64)
        self.first_row = np.zeros(0, np.int64)
        self.links = np.zeros((0, self.M0), np.int32)
        self.deg = np.zeros(0, np.int32)
        self.entry, self.max_level = -1, -1

    @property
    def ntotal(self) -> int:
        return self.data.shape[0]

    def neighbours(self, node: int, layer: int) -> np.ndarray:
        """Ids linked from ``node`` on ``layer`` (``layer ≤ level[node]``)."""
        row = self.first_row[node] + layer
        return self.links[row, :self.deg[row]]

    def _pad(self, x: np.ndarray) -> np.ndarray:
        return np.pad(x, ((0, 0), (0, self.data.shape[1] - self.dim)))   # (n, D)

    # --- the reference kernel (Python) ---------------------------------------------------------
    def _dist(self, q: np.ndarray, ids) -> np.ndarray:
        return lane_distance(self.data[ids], q, self.metric)

    def _greedy(self, q: np.ndarray, node: int, layer: int) -> int:
        """Move to the closest neighbour while that gets closer (Alg. 2 with ef = 1)."""
        best = self._dist(q, [node])[0]
        while True:
            nbrs = self.neighbours(node, layer)
            if not len(nbrs):
                return node
            d = self._dist(q, nbrs)
            i = int(d.argmin())
            if d[i] >= best:
                return node
            node, best = int(nbrs[i]), d[i]

    def _search_layer(self, q: np.ndarray, entry: int, ef: int, layer: int) -> list[tuple[float, int]]:
        """Beam search (Alg. 2): the ``ef`` closest nodes found, as ``(distance, id)``, closest first (ties: newer first)."""
        d0 = float(self._dist(q, [entry])[0])
        visited = np.zeros(self.ntotal, bool)
        visited[entry] = True
        candidates = [(d0, -entry)]                 # min-heap on (d, −id): closest unexpanded node first
        best = [(-d0, entry)]                       # min-heap on (−d, id): the worst of the ef kept on top
        while candidates:
            d, node = heapq.heappop(candidates)
            node = -node
            if d > -best[0][0] and len(best) >= ef:
                break                               # closest candidate is worse than the worst kept
            nbrs = self.neighbours(node, layer)
            fresh = nbrs[~visited[nbrs]]
            if not len(fresh):
                continue
            visited[fresh] = True
            for dn, n in zip(self._dist(q, fresh).tolist(), fresh.tolist()):
                if len(best) < ef or dn < -best[0][0]:
                    heapq.heappush(candidates, (dn, -n))
                    heapq.heappush(best, (-dn, n))
                    if len(best) > ef:
                        heapq.heappop(best)
        return [(d, -m) for d, m in sorted((-nd, -n) for nd, n in best)]

    def _select_neighbours(self, cands: list[tuple[float, int]], M: int) -> list[int]:
        """Heuristic of Alg. 4 (hnswlib ``getNeighborsByHeuristic2``): ``cands`` closest first, ties newer first.

        Walk the candidates nearest first; keep one only if no node kept so far is closer to it than
        the base node is (``_dist`` for both sides, so an exact copy of the base is a tie, not closer).
        """
        if len(cands) < M:
            return [n for _, n in cands]
        kept: list[int] = []
        for d, n in cands:
            if len(kept) >= M:
                break
            if not kept or not (self._dist(self.data[n], kept) < d).any():
                kept.append(n)
        return kept

    def _insert(self, node: int) -> None:
        level = int(self.level[node])
        if self.entry < 0:
            self.entry, self.max_level = node, level
            return
        q, cur = self.data[node], self.entry
        for layer in range(self.max_level, level, -1):
            cur = self._greedy(q, cur, layer)
        for layer in range(min(level, self.max_level), -1, -1):
            chosen = self._select_neighbours(self._search_layer(q, cur, self.ef_construction, layer), self.M)
            self._set_links(node, layer, chosen)
            limit = self.M0 if layer == 0 else self.M
            for nb in chosen:
                pool = self.neighbours(nb, layer).tolist()
                if len(pool) < limit:
                    self._set_links(nb, layer, pool + [node])
                else:                               # full: re-prune its list together with the new node
                    pool.append(node)
                    d = self._dist(self.data[nb], pool)
                    order = np.lexsort((-np.array(pool), d))   # by (d, −id)
                    self._set_links(nb, layer, self._select_neighbours([(d[i], pool[i]) for i in order], limit))
            cur = chosen[0]
        if level > self.max_level:
            self.entry, self.max_level = node, level

    def _set_links(self, node: int, layer: int, ids: list[int]) -> None:
        row = self.first_row[node] + layer
        self.links[row, :len(ids)] = ids
        self.deg[row] = len(ids)

    # --- build ---------------------------------------------------------------------------------
    def add(self, x, progress: bool = False) -> None:
        """Insert the rows of ``x (n, dim)`` one by one (Alg. 1); ids continue from ``ntotal``."""
        x = self._pad(as_vectors(x, self.dim))                                    # (n, D)
        start, n = self.ntotal, x.shape[0]
        level = np.floor(-np.log(1.0 - self.rng.random(n)) * self.mL).astype(np.int64)   # (n,)
        rows = self.links.shape[0] + np.concatenate([[0], np.cumsum(level + 1)[:-1]])
        self.data = np.concatenate([self.data, x])
        self.level = np.concatenate([self.level, level])
        self.first_row = np.concatenate([self.first_row, rows])
        self.links = np.concatenate([self.links, np.zeros((int((level + 1).sum()), self.M0), np.int32)])
        self.deg = np.concatenate([self.deg, np.zeros(int((level + 1).sum()), np.int32)])
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="HNSW insert")
        step = 1 if self.kernel == "python" else 512
        for lo in range(start, start + n, step):
            hi = min(lo + step, start + n)
            if self.kernel == "python":
                self._insert(lo)
            else:
                self.entry, self.max_level = kernels.build(
                    self.data[:hi], self.links, self.deg, self.first_row, self.level, lo, self.entry,
                    self.max_level, self.M, self.ef_construction, self.metric == "l2")
            if bar is not None:
                bar.update(hi - lo)
        if bar is not None:
            bar.close()

    # --- query ---------------------------------------------------------------------------------
    def search(self, q, k: int, ef: int = 50):
        """Top-``k`` per query: greedy descent, then a beam of ``max(ef, k)`` on layer 0 (hnswlib's rule)."""
        q = self._pad(as_vectors(q, self.dim, "q"))                               # (nq, D)
        k = check_search_k(k, self.ntotal)
        ef = max(check_positive(ef, "ef"), k)
        if self.kernel == "numba":
            return kernels.search(self.data, self.links, self.deg, self.first_row, self.entry, self.max_level,
                                  q, k, ef, self.metric == "l2")
        dist = np.empty((q.shape[0], k), np.float32)
        ids = np.empty((q.shape[0], k), np.int64)
        for row, query in enumerate(q):
            cur = self.entry
            for layer in range(self.max_level, 0, -1):
                cur = self._greedy(query, cur, layer)
            found = self._search_layer(query, cur, ef, 0)[:k]
            dist[row] = [d for d, _ in found]
            ids[row] = [n for _, n in found]
        return dist, ids

    def level_counts(self) -> list[int]:
        """How many nodes reach each layer (layer 0 = all)."""
        return [int((self.level >= layer).sum()) for layer in range(self.max_level + 1)]
