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

Distances follow hnswlib: squared L2 for ``l2``, ``1 − q·x`` for ``ip``. Ids are insertion positions.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from course_lib.vectordb.checks import as_vectors, check_k, check_metric, check_positive


class HNSWIndex:
    """Hierarchical Navigable Small World graph index (Malkov & Yashunin 2018, Alg. 1–4; after hnswlib)."""
    def __init__(self, dim: int, M: int = 16, ef_construction: int = 200, metric: str = "ip", seed: int = 100):
        self.dim, self.metric = check_positive(dim, "dim"), check_metric(metric)
        self.M = check_positive(M, "M")
        if self.M < 2:
            raise ValueError(f"M must be at least 2 (mL = 1/ln M), got {M}")
        self.M0, self.mL = 2 * self.M, 1.0 / math.log(self.M)
        self.ef_construction = check_positive(ef_construction, "ef_construction")
        self.rng = np.random.default_rng(seed)
        self.data = np.zeros((0, self.dim), np.float32)
        self.links: list[list[list[int]]] = []      # links[node][layer] = neighbour ids
        self.entry, self.max_level = -1, -1
        self._visited = np.zeros(0, bool)          # scratch "seen" flags of one beam search

    @property
    def ntotal(self) -> int:
        return len(self.links)

    # --- distances ---------------------------------------------------------------------------
    def _dist(self, q: np.ndarray, ids) -> np.ndarray:
        x = self.data[ids]                                             # (n, d)
        if self.metric == "ip":
            return 1.0 - x @ q
        diff = x - q
        return np.einsum("nd,nd->n", diff, diff)

    # --- search primitives ---------------------------------------------------------------------
    def _greedy(self, q: np.ndarray, node: int, layer: int) -> int:
        """Move to the closest neighbour while that gets closer (Alg. 2 with ef = 1)."""
        best = float(self._dist(q, [node])[0])
        while True:
            nbrs = self.links[node][layer]
            if not nbrs:
                return node
            d = self._dist(q, nbrs)
            i = int(d.argmin())
            if d[i] >= best:
                return node
            node, best = nbrs[i], float(d[i])

    def _search_layer(self, q: np.ndarray, entry: int, ef: int, layer: int) -> list[tuple[float, int]]:
        """Beam search (Alg. 2): the ``ef`` closest nodes found, as ``(distance, id)`` sorted ascending."""
        d0 = float(self._dist(q, [entry])[0])
        visited = self._visited
        visited[:] = False
        visited[entry] = True
        candidates = [(d0, entry)]                  # min-heap: closest unexpanded node first
        best = [(-d0, entry)]                       # max-heap (negated): the ef best so far
        while candidates:
            d, node = heapq.heappop(candidates)
            if d > -best[0][0] and len(best) >= ef:
                break                               # closest candidate is worse than the worst kept
            nbrs = np.array(self.links[node][layer], dtype=np.int64)
            fresh = nbrs[~visited[nbrs]] if len(nbrs) else nbrs
            if not len(fresh):
                continue
            visited[fresh] = True
            for dn, n in zip(self._dist(q, fresh).tolist(), fresh.tolist()):
                if len(best) < ef or dn < -best[0][0]:
                    heapq.heappush(candidates, (dn, n))
                    heapq.heappush(best, (-dn, n))
                    if len(best) > ef:
                        heapq.heappop(best)
        return sorted((-nd, n) for nd, n in best)

    def _select_neighbours(self, cands: list[tuple[float, int]], M: int) -> list[int]:
        """Heuristic of Alg. 4 (hnswlib ``getNeighborsByHeuristic2``): ``cands`` sorted by distance.

        Walk the candidates nearest first; keep one only if it is closer to the base node than to
        every node kept so far. Candidate-to-candidate distances come from one small matrix.
        """
        if len(cands) <= M:
            return [n for _, n in cands]
        ids = np.array([n for _, n in cands])
        to_base = np.array([d for d, _ in cands])
        x = self.data[ids]                                             # (n, d)
        if self.metric == "ip":
            pair = 1.0 - x @ x.T                                       # (n, n)
        else:
            sq = np.einsum("nd,nd->n", x, x)
            pair = sq[:, None] - 2 * x @ x.T + sq[None, :]
        kept: list[int] = []
        ok = np.ones(len(ids), bool)                # not (yet) closer to a kept node than to the base
        while len(kept) < M:
            rest = np.flatnonzero(ok)
            if not len(rest):
                break
            i = int(rest[0])
            kept.append(i)
            ok &= pair[i] >= to_base                # later candidates nearer to i than to the base drop out
            ok[: i + 1] = False
        return ids[kept].tolist()

    # --- build ---------------------------------------------------------------------------------
    def add(self, x, progress: bool = False) -> None:
        x = as_vectors(x, self.dim)
        self.data = np.concatenate([self.data, x])
        self._visited = np.zeros(self.data.shape[0], bool)
        rows = range(self.ntotal, self.data.shape[0])
        if progress:
            from tqdm.auto import tqdm

            rows = tqdm(rows, desc="HNSW insert")
        for node in rows:
            self._insert(node)

    def _insert(self, node: int) -> None:
        level = int(-math.log(1.0 - self.rng.random()) * self.mL)
        self.links.append([[] for _ in range(level + 1)])
        if self.entry < 0:
            self.entry, self.max_level = node, level
            return
        q, cur = self.data[node], self.entry
        for layer in range(self.max_level, level, -1):
            cur = self._greedy(q, cur, layer)
        for layer in range(min(level, self.max_level), -1, -1):
            found = self._search_layer(q, cur, self.ef_construction, layer)
            chosen = self._select_neighbours(found, self.M)
            self.links[node][layer] = chosen
            limit = self.M0 if layer == 0 else self.M
            for nb in chosen:
                nb_links = self.links[nb][layer]
                if len(nb_links) < limit:
                    nb_links.append(node)
                else:                               # full: re-prune its list together with the new node
                    pool = nb_links + [node]
                    d = self._dist(self.data[nb], pool)
                    order = np.argsort(d, kind="stable")
                    self.links[nb][layer] = self._select_neighbours([(float(d[i]), pool[i]) for i in order], limit)
            cur = chosen[0]
        if level > self.max_level:
            self.entry, self.max_level = node, level

    # --- query ---------------------------------------------------------------------------------
    def search(self, q, k: int, ef: int = 50):
        """Top-``k`` per query: greedy descent, then a beam of ``max(ef, k)`` on layer 0 (hnswlib's rule)."""
        q = as_vectors(q, self.dim, "q")
        k = check_k(k, self.ntotal)
        ef = max(check_positive(ef, "ef"), k)
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
        tops = np.array([len(layers) - 1 for layers in self.links])
        return [int((tops >= layer).sum()) for layer in range(self.max_level + 1)]
