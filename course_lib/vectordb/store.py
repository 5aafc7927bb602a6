"""A small vector store: named collections of (id, vector, payload) points with filtered search.

What a learner meets in Qdrant, Milvus or Chroma, in ~200 lines::

    store = VectorStore()
    docs = store.create_collection("docs", dim=384, metric="cosine")
    docs.upsert(ids=[1, 2], vectors=emb, payloads=[{"module": "os"}, {"module": "json"}])
    docs.search(query, k=5, filter={"module": {"in": ["os", "sys"]}})
    store.save("docs.vdb");  VectorStore.load("docs.vdb")

Search is exact (:func:`~course_lib.vectordb.flat.exact_search` over the rows the filter keeps), so
filtered results are exact too — the pre-filtering that approximate indexes make hard. Metrics:
``cosine`` (vectors normalised on the way in, score = cosine), ``ip`` (score = dot product),
``l2`` (score = Euclidean distance, ascending), the same as Qdrant's Cosine / Dot / Euclid.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from course_lib.vectordb import filters, storefile
from course_lib.vectordb.checks import as_vectors, check_search_k
from course_lib.vectordb.flat import exact_search
from course_lib.vectordb.hybrid import rank_by_score, reciprocal_rank_fusion

STORE_METRICS = ("cosine", "ip", "l2")


@dataclass(frozen=True)
class Hit:
    """One search result of a collection: point id, score and payload (Qdrant's ``ScoredPoint``)."""
    id: int | str
    score: float
    payload: dict


def _check_id(i) -> int | str:
    if isinstance(i, (bool, float)) or not isinstance(i, (int, np.integer, str)):
        raise TypeError(f"point ids must be int or str, got {i!r} ({type(i).__name__})")
    return int(i) if isinstance(i, np.integer) else i


class Collection:
    """A named set of (id, vector, payload) points with exact filtered search (a Qdrant collection)."""
    def __init__(self, name: str, dim: int, metric: str = "cosine"):
        if metric not in STORE_METRICS:
            raise ValueError(f"metric must be one of {STORE_METRICS}, got {metric!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self.name, self.dim, self.metric = name, dim, metric
        self.ids: list[int | str] = []
        self.row: dict[int | str, int] = {}              # id -> row in vectors / payloads
        self.vectors = np.zeros((0, dim), np.float32)   # (N, dim)
        self.payloads: list[dict] = []
        self.fields: set[str] = set()                   # every payload field ever stored

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, point_id) -> bool:
        return point_id in self.row

    def _prepare(self, vectors) -> np.ndarray:
        x = as_vectors(vectors, self.dim, "vectors")
        if self.metric == "cosine":
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            if (norms == 0).any():
                raise ValueError("vectors: a zero vector has no cosine direction")
            x = x / norms
        return x

    def upsert(self, ids: list, vectors, payloads: list[dict] | None = None) -> None:
        """Insert new points and overwrite existing ones (vector and payload), all or nothing."""
        ids = [_check_id(i) for i in ids]
        x = self._prepare(vectors)
        payloads = [{} for _ in ids] if payloads is None else list(payloads)
        if not (len(ids) == x.shape[0] == len(payloads)):
            raise ValueError(f"ids, vectors and payloads differ in length: {len(ids)}, {x.shape[0]}, {len(payloads)}")
        if len(set(ids)) != len(ids):
            raise ValueError("ids repeat within one upsert")
        for p in payloads:
            if not isinstance(p, dict) or not all(isinstance(key, str) for key in p):
                raise TypeError(f"a payload must be a dict with str keys, got {p!r}")
            try:
                json.dumps(p, allow_nan=False)
            except (TypeError, ValueError) as err:
                raise TypeError(f"a payload must hold JSON values (str, int, float, bool, None, list, dict): {err}") from None
        new = [j for j, i in enumerate(ids) if i not in self.row]
        old = [j for j, i in enumerate(ids) if i in self.row]
        for j in old:
            r = self.row[ids[j]]
            self.vectors[r], self.payloads[r] = x[j], dict(payloads[j])
        for j in new:
            self.row[ids[j]] = len(self.ids)
            self.ids.append(ids[j])
            self.payloads.append(dict(payloads[j]))
        self.vectors = np.concatenate([self.vectors, x[new]])
        for p in payloads:
            self.fields.update(p)

    def delete(self, ids: list) -> None:
        """Remove points; an unknown id raises before anything is removed."""
        ids = [_check_id(i) for i in ids]
        missing = [i for i in ids if i not in self.row]
        if missing:
            raise ValueError(f"cannot delete unknown ids {missing[:5]} from collection {self.name!r}")
        drop = {self.row[i] for i in ids}
        keep = [r for r in range(len(self.ids)) if r not in drop]
        self.ids = [self.ids[r] for r in keep]
        self.payloads = [self.payloads[r] for r in keep]
        self.vectors = self.vectors[keep]
        self.row = {i: r for r, i in enumerate(self.ids)}

    def get(self, point_id) -> tuple[np.ndarray, dict]:
        if point_id not in self.row:
            raise KeyError(f"no point {point_id!r} in collection {self.name!r}")
        r = self.row[point_id]
        return self.vectors[r].copy(), dict(self.payloads[r])

    def search(self, vector, k: int = 10, filter: dict | None = None) -> list[Hit]:
        """Exact top-``k`` among the points that pass ``filter`` (fewer when fewer pass)."""
        q = self._prepare(vector)
        if q.shape[0] != 1:
            raise ValueError(f"search takes one query vector, got {q.shape[0]}")
        k = check_search_k(k, len(self))
        rows = np.flatnonzero(filters.mask(self.payloads, filters.check_filter(filter, self.fields)))
        if len(rows) == 0:
            return []
        metric = "l2" if self.metric == "l2" else "ip"
        scores, idx = exact_search(self.vectors[rows], q, min(k, len(rows)), metric)
        if self.metric == "l2":
            scores = np.sqrt(np.maximum(scores, 0))
        return [Hit(self.ids[rows[i]], float(s), dict(self.payloads[rows[i]])) for s, i in zip(scores[0], idx[0])]

    def hybrid_search(self, vector, lexical_scores: dict[Hashable, float], k: int = 10,
                      filter: dict | None = None, candidates: int = 50, rrf_k: int = 60) -> list[Hit]:
        """Dense top-``candidates`` fused with a lexical ranking (e.g. BM25 scores by id) by RRF.

        ``Hit.score`` is the fused RRF score. Lexical ids not in the collection or not passing the
        filter are ignored, so both rankings speak about the same points.
        """
        dense = [h.id for h in self.search(vector, min(max(candidates, k), len(self)), filter)]
        flt = filters.check_filter(filter, self.fields)
        lexical = rank_by_score({i: s for i, s in lexical_scores.items()
                                 if i in self.row and filters.matches(self.payloads[self.row[i]], flt)})
        fused = reciprocal_rank_fusion([dense, lexical], k=rrf_k)[:k]
        return [Hit(i, s, dict(self.payloads[self.row[i]])) for i, s in fused]


class VectorStore:
    """Named collections, saved together to one file (:mod:`~course_lib.vectordb.storefile`)."""

    def __init__(self):
        self.collections: dict[str, Collection] = {}

    def create_collection(self, name: str, dim: int, metric: str = "cosine") -> Collection:
        if not isinstance(name, str) or not name:
            raise ValueError(f"collection name must be a non-empty str, got {name!r}")
        if name in self.collections:
            raise ValueError(f"collection {name!r} already exists")
        self.collections[name] = Collection(name, dim, metric)
        return self.collections[name]

    def __getitem__(self, name: str) -> Collection:
        if name not in self.collections:
            raise KeyError(f"no collection {name!r}; the store has {sorted(self.collections)}")
        return self.collections[name]

    def drop_collection(self, name: str) -> None:
        self[name]
        del self.collections[name]

    def save(self, path: str | os.PathLike) -> None:
        """Atomic save: after a crash at any instant the file holds the previous or this state."""
        header = {"collections": [
            {"name": c.name, "dim": c.dim, "metric": c.metric, "count": len(c), "ids": c.ids,
             "payloads": c.payloads, "fields": sorted(c.fields)} for c in self.collections.values()]}
        vectors = np.concatenate([c.vectors.ravel() for c in self.collections.values()] or [np.zeros(0, np.float32)])
        storefile.atomic_write(path, storefile.encode(header, vectors))

    @classmethod
    def load(cls, path: str | os.PathLike) -> VectorStore:
        """Read a saved store; ``StoreFileError`` (a ``ValueError``) on a foreign, truncated or corrupted file.

        Temp files of saves that were killed mid-write are removed first (:func:`storefile.remove_stale_temps`).
        """
        storefile.remove_stale_temps(path)
        header, flat = storefile.read(path)
        store, offset = cls(), 0
        for c in header["collections"]:
            col = store.create_collection(c["name"], c["dim"], c["metric"])
            size = c["count"] * c["dim"]
            col.vectors = flat[offset:offset + size].reshape(c["count"], c["dim"]).copy()
            offset += size
            col.ids, col.payloads, col.fields = list(c["ids"]), list(c["payloads"]), set(c["fields"])
            col.row = {i: r for r, i in enumerate(col.ids)}
        return store
