"""Citation format study for chapter 09 (dev split only): does SmolLM2-135M cite its sources?

    python scripts/rag_citation_study.py A,B,C 12

Rebuilds notebook 09's CPU configuration (docstring-answered questions, their documents plus 300
fixed-seed distractors, structured chunks, MiniLM dense retrieval, k = 3 sources cut to 96 tokens,
40 new tokens, greedy), draws ``n`` answerable **dev** questions with a fixed seed and answers each
with three formats, printing every answer and the citation check pass rate:

- ``A``: the model is told to cite ``[n]`` and left free (``RAG(cite_first=False)``);
- ``B``: :class:`course_lib.rag.CiteFirst` opens the reply with ``[n]``, the number chosen by the model;
- ``C``: B plus a system prompt asking for the source number first (kept only if it helps on dev).

Measured 2026-12-01 (12 questions, load ~8): A 0/12, B 8/12, C 8/12, so the chapter keeps B with
the original system prompt.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from course_lib import pretrained, rag
from course_lib.rag.chunking import MAX_TOKENS, structured_chunks

PROMPT_C = ("You answer questions about Python using only the numbered sources. Start with the number of the source "
            "that answers the question, like [2], then answer in one sentence with words from that source.")


def eval_questions(split):
    return [q for q in split if q.answerable and not any(p.startswith("topic:") for p in q.passages)]


def build_corpus(corpus_all, qs, n_distractors=300):
    """Notebook 09's ``build_corpus``: the gold documents plus fixed-seed distractors from the same modules."""
    gold = {p for q in qs for p in q.passages}
    modules = {p.rsplit(".", 1)[0].split(".")[0] for p in gold}
    pool = [d for d in corpus_all if d.source == "stdlib" and d.id not in gold and d.id.split(".")[0] in modules]
    keep = set(np.random.default_rng(0).choice(len(pool), size=min(n_distractors, len(pool)), replace=False).tolist())
    return [d for d in corpus_all if d.id in gold] + [d for i, d in enumerate(pool) if i in keep]


def main(variants: list[str], n: int) -> None:
    torch.set_num_threads(1)
    questions = rag.load_questions()
    corpus_all = rag.load_corpus(("topics", "stdlib", "notebooks"))
    dev = [q for q in questions if q.split == "dev"]
    test = [q for q in questions if q.split == "test"]
    docs = build_corpus(corpus_all, eval_questions(test) + eval_questions(dev))
    dense = rag.DenseRetriever(structured_chunks(docs, size=MAX_TOKENS), pretrained.minilm(), progress=False)
    model, bpe = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    pool = eval_questions(dev)
    sample = [pool[i] for i in sorted(np.random.default_rng(0).choice(len(pool), n, replace=False))]
    for v in variants:
        if v == "C":
            rag.answer.SYSTEM = PROMPT_C
        pipe = rag.RAG(dense, model, bpe, k=3, threshold=None, max_new_tokens=40, max_passage_tokens=96,
                       cite_first=v != "A")
        ok, t0 = 0, time.perf_counter()
        for q in sample:
            a = pipe.answer(q.question)
            ok += a.citations.ok
            print(v, q.id, a.citations.ok, a.citations.cited, round(min(a.citations.support.values(), default=0), 2),
                  repr(a.text[:150]), flush=True)
        print(f"variant {v}: {ok}/{len(sample)} in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1].split(",") if len(sys.argv) > 1 else ["A", "B", "C"], int(sys.argv[2]) if len(sys.argv) > 2 else 12)
