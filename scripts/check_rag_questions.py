"""Check course_lib/datasets/rag/questions.jsonl against the corpus of this machine's Python.

    python scripts/check_rag_questions.py            # counts, then one PASS/FAIL line per question
    python scripts/check_rag_questions.py --failed   # only the failures

A question passes when every passage id exists in the corpus (stdlib docstrings + pydoc topics) and
every key word of its reference answer occurs in at least one of its passages
(``course_lib.rag.questions.missing_keywords``). Exit status 1 when any question fails.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from course_lib.rag.questions import SPLITS, load_questions, missing_keywords, reference_corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failed", action="store_true", help="print only the questions that fail")
    args = parser.parse_args(argv)

    questions, texts = load_questions(), reference_corpus()
    counts = Counter((q.split, q.source) for q in questions)
    print(f"{len(questions)} questions; corpus {len(texts)} documents (Python {sys.version.split()[0]})")
    for split in SPLITS:
        row = ", ".join(f"{source} {counts[split, source]}" for source in ("topic", "docstring", "none"))
        print(f"  {split:4s}: {sum(counts[split, s] for s in ('topic', 'docstring', 'none')):3d}  ({row})")
    print(f"  passages per answerable question: "
          f"{sum(len(q.passages) for q in questions if q.answerable) / sum(q.answerable for q in questions):.2f}")

    failures = 0
    for q in questions:
        absent = [p for p in q.passages if p not in texts]
        words = [] if absent else missing_keywords(q, texts)
        ok = not absent and not words
        failures += not ok
        if not ok or not args.failed:
            why = f"  missing ids {absent}" if absent else f"  words in no passage {words}" if words else ""
            print(f"{'PASS' if ok else 'FAIL'} {q.id} [{q.split}/{q.source}] {q.question}{why}")
    print(f"{len(questions) - failures}/{len(questions)} pass")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
