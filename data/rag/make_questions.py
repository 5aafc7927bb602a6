"""Write course_lib/datasets/rag/questions.jsonl from the hand-written entries in questions_src.py.

    python data/rag/make_questions.py

Two mechanical steps, nothing else is generated:
1. A topic passage is completed with the other pydoc topics that contain all of its paragraphs
   (``topic:for`` is part of ``topic:compound``, ``topic:customization`` of ``topic:specialnames``...),
   so every document that holds the answer is listed.
2. The split: within each source (topic / docstring / none), a shuffle with ``random.Random(16)``
   sends the first third (rounded) to "test" and the rest to "dev".
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from course_lib.data import python_docs_topics

HERE = Path(__file__).resolve().parent
OUT = HERE.parents[1] / "course_lib" / "datasets" / "rag" / "questions.jsonl"  # package data
sys.path.insert(0, str(HERE))
from questions_src import DOCSTRING, NEGATIVE, TOPIC  # noqa: E402

SEED, TEST_FRACTION = 16, 1 / 3


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if len(p.strip()) > 80]


def topic_containers() -> dict[str, list[str]]:
    """``{topic id: [ids of the other topics that contain every paragraph of it]}``."""
    topics = python_docs_topics()
    out = {}
    for key, text in topics.items():
        paras = _paragraphs(text)
        out[f"topic:{key}"] = [f"topic:{other}" for other, body in topics.items()
                               if other != key and paras and all(p in body for p in paras)]
    return out


def build() -> list[dict]:
    containers = topic_containers()
    rows = []
    for source, entries in (("docstring", DOCSTRING), ("topic", TOPIC), ("none", [(q, a, []) for q, a in NEGATIVE])):
        for question, answer, passages in entries:
            full = list(passages)
            for p in passages:
                full += [c for c in containers.get(p, []) if c not in full]
            rows.append({"question": question, "answer": answer, "passages": full, "source": source})
    rng = random.Random(SEED)
    for source in ("docstring", "topic", "none"):
        idx = [i for i, r in enumerate(rows) if r["source"] == source]
        rng.shuffle(idx)
        n_test = round(len(idx) * TEST_FRACTION)
        for rank, i in enumerate(idx):
            rows[i]["split"] = "test" if rank < n_test else "dev"
    return [{"id": f"q{n:03d}", "question": r["question"], "answer": r["answer"], "passages": r["passages"],
             "split": r["split"]} for n, r in enumerate(rows, start=1)]


if __name__ == "__main__":
    rows = build()
    with open(OUT, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} questions -> {OUT}")
