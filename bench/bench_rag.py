"""RAG benchmarks (COURSE_DESIGN §7): BM25 query latency vs rank_bm25 / bm25s, answer latency by stage.

BM25: the Python docs topics + stdlib docstrings (~4,600 documents), the question set's questions as
queries, the same tokens and parameters (k1 1.5, b 0.75) on every side, top-10 per query, one query
at a time. Answer latency: one question through retrieve (hybrid BM25 + MiniLM) → rerank (SmolLM2
yes/no over 8 candidates) → generate (SmolLM2, greedy, 64 new tokens) on a small corpus; the
reference row is the same question answered closed-book (generation only).
"""

from __future__ import annotations

import time

import numpy as np

from bench.harness import BenchResult, benchmark, interleaved
from course_lib import rag
from course_lib.rag.bm25 import BM25


def _bm25_data(n_queries: int = 100):
    docs = rag.load_corpus(("topics", "stdlib"))
    corpus = [rag.tokenize(d.text) for d in docs]
    queries = [rag.tokenize(q.question) for q in rag.load_questions()][:n_queries]
    return corpus, [q for q in queries if q]


@benchmark("rag: BM25 query latency vs rank_bm25")
def bm25_vs_rank_bm25() -> BenchResult:
    """Top-10 of one query: our sparse scorer vs rank_bm25's Python loop over documents."""
    import rank_bm25

    corpus, queries = _bm25_data(40)
    ours, ref = BM25(corpus), rank_bm25.BM25Okapi(corpus)
    same = np.mean([set(ours.top_k(q, 10)[0]) == set(np.argsort(-ref.get_scores(q), kind="stable")[:10])
                    for q in queries[:10]])
    times = interleaved({"ours": lambda: [ours.top_k(q, 10) for q in queries],
                         "rank_bm25": lambda: [np.argsort(-ref.get_scores(q))[:10] for q in queries]}, rounds=3)
    n = len(queries)
    return BenchResult(times["ours"] / n * 1e3, times["rank_bm25"] / n * 1e3, "ms/query", False, 5.0,
                       "rank_bm25.BM25Okapi", notes=f"{len(corpus)} docs, {n} queries; same top-10 sets: {same:.2f}")


@benchmark("rag: BM25 query latency vs bm25s")
def bm25_vs_bm25s() -> BenchResult:
    """Top-10 of one query: ours (Okapi idf) vs bm25s (Lucene idf, numpy backend, 1 thread); same tokens."""
    import bm25s

    corpus, queries = _bm25_data(100)
    ours = BM25(corpus)
    ref = bm25s.BM25(k1=1.5, b=0.75)
    ref.index(corpus, show_progress=False)
    queries = [[t for t in q if t in ours.vocab] or q for q in queries]

    def run_bm25s():
        for q in queries:
            ref.retrieve([q], k=10, show_progress=False, n_threads=1)

    times = interleaved({"ours": lambda: [ours.top_k(q, 10) for q in queries], "bm25s": run_bm25s}, rounds=5)
    n = len(queries)
    return BenchResult(times["ours"] / n * 1e3, times["bm25s"] / n * 1e3, "ms/query", False, 0.5,
                       "bm25s 0.3.16 (numpy backend)", notes=f"{len(corpus)} docs, {n} queries")


@benchmark("rag: answer latency, retrieve / rerank / generate")
def answer_latency() -> BenchResult:
    """One question end to end on 2 cores' worth of CPU (threads as pinned); reference = closed-book answer."""
    from course_lib import pretrained
    from course_lib.chat import LocalChatModel

    def complete(model, tok, messages, max_tokens):
        """Greedy reply and its wall seconds through the chat interface."""
        start = time.perf_counter()
        reply = LocalChatModel(model, tok).chat(messages, max_tokens=max_tokens)
        return reply, time.perf_counter() - start

    docs = [d for d in rag.python_topics()][:12] + rag.stdlib_docs(["json", "time"])
    chunks = rag.structured_chunks(docs)
    bm25, dense = rag.BM25Retriever(chunks), rag.DenseRetriever(chunks, progress=False)
    hybrid = rag.HybridRetriever([bm25, dense], candidates=20)
    model, tok = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    reranker = rag.LLMReranker(model, tok, batch_size=8, max_passage_tokens=128)
    pipe = rag.RAG(hybrid, model, tok, k=3, max_new_tokens=64)
    question = "How do I pretty-print a dict as JSON with an indent?"
    stages = {}
    start = time.perf_counter()
    hits = hybrid.search(question, 8)
    stages["retrieve"] = time.perf_counter() - start
    start = time.perf_counter()
    scores = reranker.score(question, [p.text for p in hits])
    stages["rerank"] = time.perf_counter() - start
    top = [hits[i] for i in np.argsort(-scores, kind="stable")[:3]]
    out, stages["generate"] = complete(model, tok, pipe.messages(question, top), 64)
    closed, closed_seconds = complete(model, tok, [{"role": "user", "content": question}], 64)
    total = sum(stages.values())
    notes = (", ".join(f"{k} {v:.2f} s" for k, v in stages.items()) +
             f"; {out.usage['completion_tokens']} new tokens, prompt {out.usage['prompt_tokens']}")
    return BenchResult(total, closed_seconds, "s", False, None, "closed-book generation (no retrieval)",
                       notes=notes, extra={**stages, "closed_book_new_tokens": closed.usage["completion_tokens"]})


@benchmark("rag: answers on the test split, grounded vs RAG + CiteFirst")
def answer_table() -> BenchResult:
    """Chapter 09's answer table (scripts/rag_answer_table.py): key facts, citations, refusal, s/question per row.

    The retriever → grounded rows are recomputed over the whole test split; the SmolLM2 generator rows are
    resumed from ``course_lib/datasets/rag/answer_table.json`` (a stopped run keeps the questions it answered;
    each row says how many). Reference: RAG + CiteFirst's seconds per question.
    """
    import runpy
    from pathlib import Path

    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "rag_answer_table.py"))
    out = script["main"](["--fresh", "--rows", *script["GROUNDED_ROWS"]])
    table = out["table"]
    ours, ref = table["hybrid → grounded"], table.get("BM25 → RAG + CiteFirst (SmolLM2)", {})
    notes = "; ".join(f"{name}: score {row['answer score']:.2f}, cite R/P {row['citation recall'] or 0:.2f}/"
                      f"{row['citation precision'] or 0:.2f}, n={row['questions']}" for name, row in table.items())
    return BenchResult(ours["s/question"], ref.get("s/question", float("nan")), "s/question", False, None,
                       "BM25 → RAG + CiteFirst (SmolLM2)", notes=notes, extra={"table": table, "meta": out["meta"]})
