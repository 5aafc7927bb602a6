"""Vector search by hand (chapter 08): exact search, k-means, IVF, PQ / IVF-PQ, HNSW and a small store.

Every index takes and returns NumPy arrays like faiss: ``add(x)`` with ``x`` of shape ``(N, d)``,
``search(q, k) -> (scores, ids)`` of shape ``(nq, k)``. ``metric="ip"`` ranks by inner product
(higher first), ``metric="l2"`` by squared Euclidean distance (lower first), as faiss does.

Names are imported lazily, so the store (NumPy only) loads without importing torch. k-means is
``course_lib.vectordb.kmeans.kmeans`` (its module shares the name, so it is not re-exported here).
"""

from course_lib.lazy import lazy_exports

_HOME = {"FlatIndex": "flat", "exact_search": "flat", "HNSWIndex": "hnsw", "IVFFlatIndex": "ivf",
         "IVFPQIndex": "ivfpq", "ProductQuantizer": "pq", "clustered_vectors": "synthetic",
         "knn_recall": "synthetic", "VectorStore": "store", "reciprocal_rank_fusion": "hybrid",
         "stdlib_passage_vectors": "real_vectors"}
__all__ = sorted(_HOME)

__getattr__ = lazy_exports(__name__, _HOME)
