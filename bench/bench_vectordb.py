"""Vector search benchmarks (COURSE_DESIGN §7): ours vs faiss / hnswlib / Qdrant, one thread each, same data.

Clustered synthetic vectors (never i.i.d. Gaussian noise). QPS = queries per second of one batch search.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

from bench.harness import BenchResult, benchmark, interleaved
from course_lib.vectordb import HNSWIndex, IVFPQIndex, clustered_vectors, exact_search, recall_at_k


def _one_thread():
    import faiss

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    return faiss


@benchmark("vectordb: exact search QPS vs faiss IndexFlatIP")
def exact_qps() -> BenchResult:
    """100k × 384 clustered, 256 queries, top-10 by inner product."""
    faiss = _one_thread()
    xb, xq = clustered_vectors(100_000, 384, n_clusters=500, n_queries=256, seed=0)
    ref = faiss.IndexFlatIP(384)
    ref.add(xb)
    times = interleaved({"ours": lambda: exact_search(xb, xq, 10), "faiss": lambda: ref.search(xq, 10)}, rounds=3)
    ours, theirs = times["ours"], times["faiss"]
    same = float((exact_search(xb, xq, 10)[1] == ref.search(xq, 10)[1]).mean())
    return BenchResult(len(xq) / ours, len(xq) / theirs, "QPS", True, 0.8, "faiss IndexFlatIP",
                       notes=f"same ids: {same:.4f}")


@benchmark("vectordb: IVF-PQ QPS at equal recall@10 vs faiss")
def ivfpq_qps() -> BenchResult:
    """50k × 128 clustered, nlist 256, m 16 × 8 bits; faiss at nprobe 8, ours at the smallest nprobe reaching its recall."""
    faiss = _one_thread()
    xb, xq = clustered_vectors(50_000, 128, n_clusters=300, n_queries=500, seed=0)
    truth = exact_search(xb, xq, 10)[1]
    ref = faiss.IndexIVFPQ(faiss.IndexFlatIP(128), 128, 256, 16, 8, faiss.METRIC_INNER_PRODUCT)
    ref.train(xb[:20_000])
    ref.add(xb)
    ref.nprobe = 8
    target = recall_at_k(ref.search(xq, 10)[1], truth)
    ours = IVFPQIndex(128, 256, m=16)
    ours.train(xb[:20_000])
    ours.add(xb)
    for nprobe in (4, 6, 8, 10, 12, 16, 24, 32):
        rec = recall_at_k(ours.search(xq, 10, nprobe)[1], truth)
        if rec >= target - 0.005:
            break
    times = interleaved({"ours": lambda: ours.search(xq, 10, nprobe), "faiss": lambda: ref.search(xq, 10)}, rounds=3)
    t, theirs = times["ours"], times["faiss"]
    return BenchResult(len(xq) / t, len(xq) / theirs, "QPS", True, 0.5, "faiss IndexIVFPQ nprobe 8",
                       notes=f"recall@10 faiss {target:.3f}; ours {rec:.3f} at nprobe {nprobe}")


@benchmark("vectordb: HNSW QPS vs hnswlib (M 16, ef 32)")
def hnsw_qps() -> BenchResult:
    """10k × 64 clustered, ef_construction 100; recall of both in the notes (our build is pure Python)."""
    import hnswlib

    _one_thread()
    xb, xq = clustered_vectors(10_000, 64, n_clusters=100, n_queries=300, seed=0)
    truth = exact_search(xb, xq, 10)[1]
    ours = HNSWIndex(64, M=16, ef_construction=100)
    ours.add(xb)
    ref = hnswlib.Index(space="ip", dim=64)
    ref.init_index(max_elements=len(xb), M=16, ef_construction=100, random_seed=100)
    ref.set_num_threads(1)
    ref.add_items(xb)
    ref.set_ef(32)
    times = interleaved({"ours": lambda: ours.search(xq, 10, ef=32), "hnswlib": lambda: ref.knn_query(xq, k=10)},
                        rounds=1)
    t_ours, t_ref = times["ours"], times["hnswlib"]
    r_ours = recall_at_k(ours.search(xq, 10, ef=32)[1], truth)
    r_ref = recall_at_k(ref.knn_query(xq, k=10)[0], truth)
    return BenchResult(len(xq) / t_ours, len(xq) / t_ref, "QPS", True, None, "hnswlib",
                       notes=f"recall@10 ours {r_ours:.3f}, hnswlib {r_ref:.3f}")


@benchmark("vectordb: filtered store search vs Qdrant local mode")
def store_vs_qdrant() -> BenchResult:
    """2k × 384 points with payloads, 50 filtered top-10 queries; Qdrant in embedded local mode (no server)."""
    from qdrant_client import QdrantClient

    from course_lib.vectordb import qdrant
    from course_lib.vectordb.store import VectorStore

    xb, xq = clustered_vectors(2_000, 384, n_clusters=50, n_queries=50, seed=0)
    col = VectorStore().create_collection("bench", 384)
    col.upsert(list(range(len(xb))), xb, [{"group": i % 7, "year": 1990 + i % 30} for i in range(len(xb))])
    flt = {"group": {"in": [1, 2, 3]}, "year": {"gte": 2000}}
    with tempfile.TemporaryDirectory() as folder:
        client = QdrantClient(path=folder)
        start = time.perf_counter()
        qdrant.copy_collection(client, col)
        upload = time.perf_counter() - start
        same = np.mean([[h.id for h in col.search(q, 10, flt)] == [h.id for h in qdrant.search(client, "bench", q, 10, flt)]
                        for q in xq])
        times = interleaved({"ours": lambda: [col.search(q, 10, flt) for q in xq],
                             "qdrant": lambda: [qdrant.search(client, "bench", q, 10, flt) for q in xq]}, rounds=3)
        ours, theirs = times["ours"], times["qdrant"]
        client.close()
    return BenchResult(len(xq) / ours, len(xq) / theirs, "QPS", True, None, "Qdrant local mode (qdrant-client 1.20)",
                       notes=f"identical top-10: {same:.2f}; Qdrant upload {upload:.1f}s")
