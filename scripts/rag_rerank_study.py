"""Rerank study for chapter 09: hybrid top-N vs hybrid + SmolLM2 rerank on every answerable test question.

    python scripts/rag_rerank_study.py                      # N = 20, writes course_lib/datasets/rag/rerank_study.json
    python scripts/rag_rerank_study.py --n 10 --out /tmp/s.json --limit 3

The corpus is the one docs/NOTES.md ("Chapter notes", "09 RAG") measures retrieval on: pydoc topics + stdlib
docstrings (no notebook prose), structured chunks of <= 256 MiniLM tokens. For each answerable question of
the held-out ``test`` split the hybrid retriever (BM25 + MiniLM, RRF k = 60, 50 candidates per retriever)
gives the top ``n`` chunks, and :class:`course_lib.rag.LLMReranker` scores each (question, chunk) pair with
its fixed prompt (nothing is tuned here). Scores are filled in passes of increasing depth (ranks 1..10 for
every question, then 11..n), and the JSON is rewritten after every question, so a run that is stopped
still leaves a usable file; a rerun resumes where the file stops when the corpus and settings match.
MiniLM vectors are cached (``--cache-dir``), so a rerun does not re-embed. Chapter 09 loads the file,
recomputes the table with :mod:`course_lib.rag.metrics` and re-scores a fixed-seed sample of pairs live.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from course_lib import pretrained, rag, weights
from course_lib.rag.chunking import MAX_TOKENS, structured_chunks
from course_lib.rag.metrics import evaluate_rankings
from course_lib.rag.rerank import PROMPT

ROOT = Path(__file__).resolve().parents[1]


def sha(text: str, n: int = 16) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def build(cache_dir: Path):
    """Documents, chunks and the hybrid retriever of the study (the NOTES corpus)."""
    docs = rag.load_corpus(("topics", "stdlib"))
    chunks = structured_chunks(docs, size=MAX_TOKENS)
    bm25 = rag.BM25Retriever(chunks)
    dense = rag.DenseRetriever(chunks, pretrained.minilm(), batch_size=32, cache_dir=cache_dir)
    return docs, chunks, rag.HybridRetriever([bm25, dense], candidates=50, k_rrf=60)


def complete_depth(study: dict) -> int:
    """The deepest pass whose scores are all in (0: none), i.e. how many candidates every question has."""
    done = [d for d in study["meta"]["passes"]
            if all(c["rerank"] is not None for r in study["questions"] for c in r["candidates"][:d])]
    return max(done, default=0)


def rankings(study: dict, depth: int) -> tuple[list[list[str]], list[list[str]]]:
    """Document rankings of the top ``depth`` candidates: hybrid order, and reranked (stable: ties keep hybrid order)."""
    hybrid, rerank = [], []
    for row in study["questions"]:
        cands = row["candidates"][:depth]
        hybrid.append([c["doc_id"] for c in cands])
        order = sorted(range(len(cands)), key=lambda i: -cands[i]["rerank"])
        rerank.append([cands[i]["doc_id"] for i in order])
    return hybrid, rerank


def summarize(study: dict) -> dict:
    """``{"depth", "hybrid": metrics, "hybrid + rerank": metrics}`` over every question, at the complete depth."""
    depth = complete_depth(study)
    if depth == 0:
        return {"depth": 0}
    relevant = [row["relevant"] for row in study["questions"]]
    hybrid, rerank = rankings(study, depth)
    return {"depth": depth, "hybrid": evaluate_rankings(hybrid, relevant),
            "hybrid + rerank": evaluate_rankings(rerank, relevant)}


def write(path: Path, study: dict) -> None:
    study["summary"] = summarize(study)
    tmp = path.with_suffix(".tmp")
    head = json.dumps({k: v for k, v in study.items() if k != "questions"}, indent=1, ensure_ascii=False)
    rows = ",\n".join(json.dumps(row, ensure_ascii=False) for row in study["questions"])   # one question a line
    tmp.write_text(f'{head[:-2]},\n "questions": [\n{rows}\n]}}\n', encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="hybrid candidates reranked per question")
    ap.add_argument("--first", type=int, default=10, help="depth of the first pass over all questions")
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--max-passage-tokens", type=int, default=192)
    ap.add_argument("--limit", type=int, default=None, help="only the first LIMIT questions (timing slices)")
    ap.add_argument("--out", type=Path, default=ROOT / "course_lib" / "datasets" / "rag" / "rerank_study.json")
    ap.add_argument("--cache-dir", type=Path, default=weights.cache_dir() / "rag")
    ap.add_argument("--summarize", action="store_true", help="only recompute the summary table of --out")
    args = ap.parse_args()
    if args.summarize:
        study = json.loads(args.out.read_text())
        write(args.out, study)
        print(json.dumps(study["summary"], indent=1))
        return
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(0)
    t_start = time.perf_counter()

    docs, chunks, hybrid = build(args.cache_dir)
    questions = [q for q in rag.load_questions("test") if q.answerable][:args.limit]
    rag.validate(questions, {d.id for d in docs})
    print(f"{len(docs)} documents, {len(chunks)} chunks, {len(questions)} test questions; "
          f"built in {time.perf_counter() - t_start:.0f} s", flush=True)

    meta = {
        "corpus": {"sources": ["topics", "stdlib"], "documents": len(docs), "chunks": len(chunks),
                   "chunking": f"structured_chunks(size={MAX_TOKENS})",
                   "texts_sha256": hashlib.sha256("\x00".join(c.text for c in chunks).encode()).hexdigest()},
        "questions": {"file": "course_lib/datasets/rag/questions.jsonl", "split": "test", "answerable": len(questions),
                      "file_sha256": hashlib.sha256(rag.questions.QUESTIONS_PATH.read_bytes()).hexdigest()},
        "first_stage": "HybridRetriever([BM25Retriever, DenseRetriever(MiniLM)], candidates=50, k_rrf=60)",
        "reranker": {"class": "course_lib.rag.LLMReranker", "model": "SmolLM2-135M-Instruct",
                     "weights": weights.smollm2_gguf_path().name, "prompt": PROMPT,
                     "max_passage_tokens": args.max_passage_tokens, "batch_size": args.batch_size,
                     "score": "sigmoid(z_Yes - z_No), next-token logits after the assistant header"},
        "n_candidates": args.n, "passes": sorted({min(args.first, args.n), args.n}),
        "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    study = json.loads(args.out.read_text()) if args.out.is_file() else None
    if study is None or {k: study["meta"].get(k) for k in meta} != meta:
        if study is not None:
            print("existing file has other settings: starting over", flush=True)
        rows = []
        for q in questions:
            hits = hybrid.search(q.question, args.n)
            rows.append({"id": q.id, "question": q.question, "relevant": list(q.passages), "candidates": [
                {"chunk_id": h.id, "doc_id": h.doc_id, "text_sha256": sha(h.text), "hybrid_rank": r,
                 "hybrid_score": round(h.score, 8), "rerank": None} for r, h in enumerate(hits, start=1)]})
        study = {"meta": meta, "summary": {}, "questions": rows}
    meta = study["meta"]
    meta["created"] = meta.get("created") or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    meta.setdefault("rerank_seconds", 0.0)
    text = {c.id: c.text for c in chunks}

    reranker = rag.LLMReranker(pretrained.smollm2(), pretrained.smollm2_tokenizer(), batch_size=args.batch_size,
                               max_passage_tokens=args.max_passage_tokens)
    start = 0
    for depth in meta["passes"]:
        todo = [row for row in study["questions"] if any(c["rerank"] is None for c in row["candidates"][start:depth])]
        for i, row in enumerate(todo, start=1):
            t0 = time.perf_counter()
            cands = [c for c in row["candidates"][start:depth] if c["rerank"] is None]
            cands.sort(key=lambda c: len(text[c["chunk_id"]]))     # similar lengths per batch: less padding
            scores = reranker.score(row["question"], [text[c["chunk_id"]] for c in cands])
            for c, s in zip(cands, scores):
                c["rerank"] = round(float(s), 8)
            meta["rerank_seconds"] = round(meta["rerank_seconds"] + time.perf_counter() - t0, 1)
            meta["scored_pairs"] = sum(c["rerank"] is not None for r in study["questions"] for c in r["candidates"])
            meta["complete"] = meta["scored_pairs"] == sum(len(r["candidates"]) for r in study["questions"])
            write(args.out, study)
            print(f"ranks {start + 1}-{depth}: {i}/{len(todo)} {row['id']} {len(cands)} pairs in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
        start = depth
    print(f"done: {meta['scored_pairs']} pairs, {meta['rerank_seconds']:.0f} s of reranking, "
          f"{time.perf_counter() - t_start:.0f} s in all -> {args.out}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
