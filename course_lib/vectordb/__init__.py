"""Vector search by hand (chapter 08): exact search, k-means, IVF, PQ / IVF-PQ, HNSW and a small store.

Every index takes and returns NumPy arrays like faiss: ``add(x)`` with ``x`` of shape ``(N, d)``,
``search(q, k) -> (scores, ids)`` of shape ``(nq, k)``. ``metric="ip"`` ranks by inner product
(higher first), ``metric="l2"`` by squared Euclidean distance (lower first), as faiss does.
"""

from course_lib.vectordb.flat import FlatIndex, exact_search
from course_lib.vectordb.hnsw import HNSWIndex
from course_lib.vectordb.ivf import IVFFlatIndex
from course_lib.vectordb.ivfpq import IVFPQIndex
from course_lib.vectordb.kmeans import kmeans
from course_lib.vectordb.pq import ProductQuantizer
from course_lib.vectordb.synthetic import clustered_vectors, recall_at_k

__all__ = ["FlatIndex", "HNSWIndex", "IVFFlatIndex", "IVFPQIndex", "ProductQuantizer", "clustered_vectors",
           "exact_search", "kmeans", "recall_at_k"]
