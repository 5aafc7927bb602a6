"""Reranker benchmark: hybrid vs hybrid + the trained MiniLM cross-encoder on the held-out test split.

The corpus and first stage are the rerank study's (``scripts/rag_rerank_study.py``): pydoc topics +
stdlib docstrings, structured chunks of ≤ 256 MiniLM tokens, HybridRetriever(BM25 + MiniLM, 50
candidates each, RRF k = 60). For every answerable ``test`` question hybrid gives its top
``candidates`` (the shipped config's, 20) chunks; the shipped reranker (``data/reranker/``, trained
on dev + synthetic questions only) reorders them. Both rankings are scored at document level by
:mod:`course_lib.rag.metrics`. The row's ratio is our MRR / hybrid's MRR; the target is
hybrid + 0.05 MRR, as a ratio of this run's hybrid MRR. Seconds per query are measured on the same run.
"""

from __future__ import annotations

import time

from bench.harness import BenchResult, benchmark
from course_lib import pretrained, rag, weights
from course_lib.rag.chunking import MAX_TOKENS, structured_chunks
from course_lib.rag.cross_encoder import CrossEncoderRetriever
from course_lib.rag.metrics import evaluate_rankings


class _Cached:
    """Replays the first stage's stored top lists, so the reranker's time is measured alone."""

    def __init__(self, hits: dict[str, list]):
        self.hits = hits

    def search(self, query: str, k: int = 10) -> list:
        return self.hits[query][:k]


@benchmark("rag: trained cross-encoder reranker vs hybrid, test-split MRR")
def rerank_vs_hybrid() -> BenchResult:
    """MRR / nDCG@10 / recall@k on the 90 answerable test questions; ratio = reranked MRR / hybrid MRR."""
    docs = rag.load_corpus(("topics", "stdlib"))
    chunks = structured_chunks(docs, size=MAX_TOKENS)
    hybrid = rag.HybridRetriever([rag.BM25Retriever(chunks), rag.DenseRetriever(
        chunks, pretrained.minilm(), progress=False, cache_dir=weights.cache_dir() / "rag")], candidates=50, k_rrf=60)
    questions = [q for q in rag.load_questions("test") if q.answerable]
    start = time.perf_counter()
    first = {q.question: hybrid.search(q.question, 20) for q in questions}
    hybrid_seconds = (time.perf_counter() - start) / len(questions)
    reranker = CrossEncoderRetriever.load(_Cached(first))
    start = time.perf_counter()
    reranked = [reranker.search(q.question, 20) for q in questions]
    rerank_seconds = (time.perf_counter() - start) / len(questions)
    relevant = [list(q.passages) for q in questions]
    table = {"hybrid": evaluate_rankings([[p.doc_id for p in first[q.question]] for q in questions], relevant),
             "hybrid + cross-encoder": evaluate_rankings([[p.doc_id for p in r] for r in reranked], relevant)}
    ours, ref = table["hybrid + cross-encoder"]["MRR"], table["hybrid"]["MRR"]
    notes = (f"{len(questions)} test questions, top-{reranker.candidates} reranked, rank_weight {reranker.rank_weight}; "
             f"MRR {ref:.3f} -> {ours:.3f} ({ours - ref:+.3f}), nDCG@10 {table['hybrid']['nDCG@10']:.3f} -> "
             f"{table['hybrid + cross-encoder']['nDCG@10']:.3f}; s/query hybrid {hybrid_seconds:.2f}, rerank {rerank_seconds:.2f}")
    return BenchResult(ours, ref, "MRR", True, (ref + 0.05) / ref, "hybrid (BM25 + MiniLM, RRF)", notes=notes,
                       extra={"table": table, "seconds_per_query": {"hybrid": hybrid_seconds, "rerank": rerank_seconds},
                              "questions": len(questions), "mrr_gain": ours - ref})
