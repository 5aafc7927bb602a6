"""Chapter 09's answer table on the held-out test split: every retriever → the grounded answerer, every answerer.

    python scripts/rag_answer_table.py                          # every row, every test question
    python scripts/rag_answer_table.py --rows "BM25 → grounded" --limit 10
    python scripts/rag_answer_table.py --fresh --rows "hybrid → grounded"    # recompute, do not resume

Corpus: pydoc topics + stdlib docstrings, structured chunks of ≤ 256 MiniLM tokens (the corpus of
``rerank_study.json``). Rows:

- retrievers, each feeding :class:`course_lib.rag.grounded.GroundedRAG` (k = 3, settings chosen on dev):
  BM25; hybrid (RRF) and hybrid + SmolLM2 yes/no rerank, replayed from ``rerank_study.json``; dense
  (MiniLM) and dense + HyDE, live (they embed the corpus first; cached with ``--cache-dir``);
- answerers over hybrid: closed-book SmolLM2 (no sources), RAG with free generation, RAG + CiteFirst,
  and the grounded answerer — over BM25, which needs no vectors; the generators have no refusal
  threshold (their refusals are the replies that say they don't know).

The hybrid rankings are replayed because embedding the 5,609 chunks takes hours on a loaded 2-core
machine; those rows cover the answerable questions only (the study stored no others). Each row's per-question results are
written to the output after every question, so a stopped run resumes. Refusal thresholds come from dev
(:func:`course_lib.rag.evaluate.choose_threshold`), never from test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from course_lib import pretrained, rag
from course_lib.chat import LocalChatModel
from course_lib.rag.answer import Answer
from course_lib.rag.answer_metrics import summarize
from course_lib.rag.chunking import MAX_TOKENS, structured_chunks
from course_lib.rag.evaluate import answer_row, choose_threshold
from course_lib.rag.grounded import GroundedRAG
from course_lib.rag.types import Passage

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "course_lib" / "datasets" / "rag" / "rerank_study.json"
OUT = ROOT / "course_lib" / "datasets" / "rag" / "answer_table.json"
K = 3                    # passages per answer, for every answerer
NEW_TOKENS = 48          # generation budget of the SmolLM2 answerers


class StoredRanking:
    """A retriever that replays stored candidates (chunk ids, best first) of the questions it knows."""

    def __init__(self, rankings: dict[str, list[str]], chunks_by_id: dict[str, Passage]):
        self.rankings, self.chunks = rankings, chunks_by_id

    def search(self, query: str, k: int = 10) -> list[Passage]:
        if query not in self.rankings:
            raise KeyError(f"no stored ranking for {query!r}")
        return [self.chunks[c] for c in self.rankings[query][:k]]


def stored_retrievers(chunks_by_id: dict[str, Passage]) -> dict[str, StoredRanking]:
    """Hybrid and hybrid + SmolLM2 rerank, replayed from ``rerank_study.json`` (answerable test questions)."""
    study = json.loads(STUDY.read_text(encoding="utf-8"))
    depth = study["summary"]["depth"]
    hybrid, rerank = {}, {}
    for row in study["questions"]:
        cands = row["candidates"][:depth]
        hybrid[row["question"]] = [c["chunk_id"] for c in cands]
        rerank[row["question"]] = [c["chunk_id"] for c in sorted(cands, key=lambda c: -c["rerank"])]
    return {"hybrid": StoredRanking(hybrid, chunks_by_id), "hybrid + rerank (SmolLM2 yes/no)": StoredRanking(rerank, chunks_by_id)}


GROUNDED_ROWS = ("BM25 → grounded", "hybrid → grounded", "hybrid + rerank (SmolLM2 yes/no) → grounded")
_MODEL: list = []


def smollm2():
    """SmolLM2-135M-Instruct and its tokenizer, loaded once."""
    if not _MODEL:
        _MODEL.extend([pretrained.smollm2(), pretrained.smollm2_tokenizer()])
    return _MODEL


def load_rows(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"rows": {}, "table": {}}


def run_row(name: str, answer, questions, out: dict, path: Path, limit: int | None) -> None:
    """Answer ``questions`` (resuming from ``out``), save after each, then summarise the row."""
    done = {r["id"]: r for r in out["rows"].get(name, [])}
    todo = questions[:limit] if limit else questions
    for q in todo:
        if q.id in done:
            continue
        done[q.id] = answer_row(q, answer(q.question))
        out["rows"][name] = [done[x.id] for x in todo if x.id in done]
        path.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    rows = [done[q.id] for q in todo if q.id in done]
    out["table"][name] = summarize(rows)
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in out["table"][name].items()}, flush=True)


def dev_threshold(bm25, idf) -> float:
    """The grounded answerer's refusal threshold: the best split of dev top sentence shares (BM25 passages)."""
    pos, neg = [], []
    plain = GroundedRAG(bm25, k=K, idf=idf)
    for q in rag.load_questions("dev"):
        ranked = plain.select(q.question, bm25.search(q.question, K))
        (pos if q.answerable else neg).append(max((c.share for c in ranked), default=0.0))
    return choose_threshold(pos, neg)


def closed_book(model, tokenizer):
    """SmolLM2 answering from its weights alone: no sources, so no citation can hold."""
    chat = LocalChatModel(model, tokenizer)

    def answer(question: str) -> Answer:
        start = time.perf_counter()
        reply = chat.chat([{"role": "user", "content": question}], max_tokens=NEW_TOKENS)
        return Answer(question, reply.content.strip(), [], False, None, {"generate": time.perf_counter() - start},
                      reply.usage["completion_tokens"])
    return answer


def shuffled(questions, seed: int = 0):
    """A fixed random order, so that the first N questions of a stopped run are a fair sample."""
    order = np.random.default_rng(seed).permutation(len(questions))
    return [questions[i] for i in order]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", nargs="*", default=None, help="only these rows (names as printed)")
    parser.add_argument("--limit", type=int, default=None, help="first N test questions of each row")
    parser.add_argument("--cache-dir", default=None, help="where the MiniLM vectors of the corpus are cached")
    parser.add_argument("--fresh", action="store_true", help="recompute the selected rows instead of resuming them")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    path = Path(args.out)
    out = load_rows(path)
    if args.fresh:
        for name in args.rows or list(out["rows"]):
            out["rows"].pop(name, None)
            out["table"].pop(name, None)
    docs = rag.load_corpus(("topics", "stdlib"))
    chunks = structured_chunks(docs, size=MAX_TOKENS)
    by_id = {c.id: Passage(c.id, c.doc_id, c.title, c.text, 0.0) for c in chunks}
    bm25 = rag.BM25Retriever(chunks)
    idf = GroundedRAG.idf_from(bm25)
    threshold = dev_threshold(bm25, idf)
    out["meta"] = {"k": K, "new_tokens": NEW_TOKENS, "grounded_threshold (dev)": threshold,
                   "corpus_chunks": len(chunks), "threads": torch.get_num_threads()}
    test = shuffled(rag.load_questions("test"))
    answerable = [q for q in test if q.answerable]

    def grounded(retriever):
        return lambda: GroundedRAG(retriever, k=K, threshold=threshold, idf=idf).answer

    def generator(**kw):
        return lambda: rag.RAG(bm25, *smollm2(), k=K, max_new_tokens=NEW_TOKENS, **kw).answer

    rows = {"BM25 → grounded": (grounded(bm25), test)}
    stored = stored_retrievers(by_id)
    for name, retriever in stored.items():
        rows[f"{name} → grounded"] = (grounded(retriever), answerable)
    rows["hybrid + trained cross-encoder → grounded"] = (
        lambda: grounded(rag.CrossEncoderRetriever.load(stored["hybrid"]))(), answerable)
    dense = []

    def dense_retriever():
        if not dense:
            dense.append(rag.DenseRetriever(chunks, pretrained.minilm(), batch_size=32, cache_dir=args.cache_dir))
        return dense[0]

    rows["dense → grounded"] = (lambda: grounded(dense_retriever())(), test)
    rows["dense + HyDE → grounded"] = (lambda: grounded(rag.HydeRetriever(dense_retriever(), *smollm2(),
                                                                          max_new_tokens=NEW_TOKENS))(), test)
    rows["closed-book SmolLM2"] = (lambda: closed_book(*smollm2()), test)
    rows["BM25 → RAG free (SmolLM2)"] = (generator(cite_first=False), test)
    rows["BM25 → RAG + CiteFirst (SmolLM2)"] = (generator(cite_first=True), test)
    for name, (make, questions) in rows.items():
        if args.rows is None or name in args.rows:
            start = time.perf_counter()
            run_row(name, make(), questions, out, path, args.limit)
            print(f"  {time.perf_counter() - start:.0f} s", flush=True)
    return out


if __name__ == "__main__":
    main()
