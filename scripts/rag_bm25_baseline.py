"""Sanity baseline for course_lib/datasets/rag/questions.jsonl: rank_bm25's BM25Okapi over whole documents.

    python scripts/rag_bm25_baseline.py

Documents are the question set's corpus (stdlib docstrings + pydoc topics), indexed as "id words + text",
lower-cased ``[a-z0-9_]+`` tokens, k1 = 1.5, b = 0.75 (rank_bm25's defaults). Prints, per split, over the
answerable questions: recall@10 (share of a question's passages in the top 10, averaged), hit@10 (any
passage in the top 10) and MRR@10 (first relevant rank). Shows the set is neither trivial nor impossible;
the chapter's own retrievers are measured in chapters/09.
"""

from __future__ import annotations

import re

import numpy as np
from rank_bm25 import BM25Okapi

from course_lib.rag.questions import SPLITS, load_questions, reference_corpus


def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z0-9_]+", text.lower())


def main() -> None:
    texts = reference_corpus()
    ids = list(texts)
    bm25 = BM25Okapi([tokenize(f"{i.replace('.', ' ').replace(':', ' ')} {texts[i]}") for i in ids])
    print(f"BM25Okapi over {len(ids)} documents")
    scores = {}                                  # (split, source) -> [(recall, hit, rr), ...]
    for q in load_questions():
        if not q.answerable:
            continue
        top = [ids[i] for i in np.argsort(-bm25.get_scores(tokenize(q.question)), kind="stable")[:10]]
        relevant = set(q.passages)
        rr = next((1 / (rank + 1) for rank, d in enumerate(top) if d in relevant), 0.0)
        row = (len(relevant & set(top)) / len(relevant), float(bool(relevant & set(top))), rr)
        for key in ((q.split, "all"), (q.split, q.source)):
            scores.setdefault(key, []).append(row)
    for split in SPLITS:
        for source in ("all", "topic", "docstring"):
            recall, hit, rr = np.mean(scores[split, source], axis=0)
            print(f"{split:4s} {source:9s} n={len(scores[split, source]):3d}  recall@10 {recall:.3f}  "
                  f"hit@10 {hit:.3f}  MRR@10 {rr:.3f}")


if __name__ == "__main__":
    main()
