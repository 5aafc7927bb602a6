"""The same collection in Qdrant (``qdrant-client``): embedded local mode now, a server or cluster later.

``QdrantClient(path=...)`` runs Qdrant's logic inside this Python process on a local folder — no
server, offline. ``QdrantClient(url="http://host:6333")`` talks to a real server with the same calls.
These helpers translate our collection and our filter dicts, so both engines answer the same query.
"""

from __future__ import annotations

from qdrant_client import QdrantClient, models

from course_lib.vectordb.store import Collection, Hit

DISTANCE = {"cosine": models.Distance.COSINE, "ip": models.Distance.DOT, "l2": models.Distance.EUCLID}


def to_qdrant_filter(flt: dict | None) -> models.Filter | None:
    """Our ``{field: condition}`` dict as a Qdrant ``Filter`` with one ``must`` clause per field."""
    if not flt:
        return None
    must = []
    for key, cond in flt.items():
        if isinstance(cond, dict) and "in" in cond:
            must.append(models.FieldCondition(key=key, match=models.MatchAny(any=list(cond["in"]))))
        elif isinstance(cond, dict):
            must.append(models.FieldCondition(key=key, range=models.Range(**cond)))
        else:
            must.append(models.FieldCondition(key=key, match=models.MatchValue(value=cond)))
    return models.Filter(must=must)


def copy_collection(client: QdrantClient, collection: Collection, batch: int = 1024) -> None:
    """Create ``collection.name`` in Qdrant (replacing one of that name) and upload every point."""
    if client.collection_exists(collection.name):
        client.delete_collection(collection.name)
    client.create_collection(collection.name, vectors_config=models.VectorParams(
        size=collection.dim, distance=DISTANCE[collection.metric]))
    for start in range(0, len(collection), batch):
        rows = range(start, min(start + batch, len(collection)))
        client.upsert(collection.name, points=[
            models.PointStruct(id=collection.ids[r], vector=collection.vectors[r].tolist(), payload=collection.payloads[r])
            for r in rows])


def search(client: QdrantClient, name: str, vector, k: int = 10, filter: dict | None = None) -> list[Hit]:
    """Qdrant's answer to the same query, as our :class:`Hit` list."""
    points = client.query_points(name, query=list(map(float, vector)), query_filter=to_qdrant_filter(filter),
                                 limit=k, with_payload=True).points
    return [Hit(p.id, float(p.score), p.payload or {}) for p in points]
