"""The chapter-09 question set: hand-written questions over the Python docs, with the passages that answer them.

``rag/questions.jsonl`` in :mod:`course_lib.datasets` holds one JSON object a line::

    {"id": "q001", "question": "...", "answer": "...", "passages": ["json.dumps", "topic:with"], "split": "dev"}

Passage ids are ``topic:<key>`` for ``pydoc_data.topics`` and the dotted ids of
:func:`course_lib.corpus.stdlib_docstrings`. ``passages == []`` marks a question the corpus cannot
answer (used to choose the refusal threshold on ``dev`` and check it on ``test``). How the set was
made: ``course_lib/datasets/rag/README.md``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from course_lib.datasets import dataset

QUESTIONS_PATH = dataset("rag/questions.jsonl")
SPLITS = ("dev", "test")
_FIELDS = {"id": str, "question": str, "answer": str, "passages": list, "split": str}
_STOPWORDS = frozenset("""a an and are as at be but by can do does for from has have if in into is it its
    of on or so such than that the then this to was were when where which while will with without you
    your not no yes there their they them also only other all any each every how what why""".split())


@dataclass(frozen=True)
class Question:
    """One evaluation question: reference answer, the corpus ids that answer it and its split (dev/test)."""
    id: str
    question: str
    answer: str                    # a short reference answer, worded after the passages
    passages: tuple[str, ...]      # every corpus id that answers it; empty: not answerable from the corpus
    split: str                     # "dev" (tune on it) or "test" (held out)

    @property
    def answerable(self) -> bool:
        return bool(self.passages)

    @property
    def source(self) -> str:
        """Stratum of the split: "topic", "docstring" (by the first passage) or "none" (unanswerable)."""
        if not self.passages:
            return "none"
        return "topic" if self.passages[0].startswith("topic:") else "docstring"


def topic_id(key: str) -> str:
    """Corpus id of a ``pydoc_data.topics`` entry."""
    return f"topic:{key}"


def reference_corpus() -> dict[str, str]:
    """``{id: text}`` of the documents the ids point to: stdlib docstrings, then the pydoc topics."""
    from course_lib.corpus import stdlib_docstrings
    from course_lib.data import python_docs_topics

    texts = {doc.id: doc.text for doc in stdlib_docstrings()}
    texts.update({topic_id(key): text for key, text in python_docs_topics().items()})
    return texts


def _parse(line: str, where: str) -> Question:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [name for name in _FIELDS if name not in obj]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}; expected {sorted(_FIELDS)}")
    for name, kind in _FIELDS.items():
        if not isinstance(obj[name], kind):
            raise ValueError(f"{where}: field {name!r} must be {kind.__name__}, got {type(obj[name]).__name__}")
    if not obj["question"].strip() or not obj["answer"].strip():
        raise ValueError(f"{where}: 'question' and 'answer' must be non-empty")
    if not all(isinstance(p, str) and p for p in obj["passages"]):
        raise ValueError(f"{where}: 'passages' must be a list of non-empty id strings")
    if obj["split"] not in SPLITS:
        raise ValueError(f"{where}: split must be one of {SPLITS}, got {obj['split']!r}")
    return Question(obj["id"], obj["question"], obj["answer"], tuple(obj["passages"]), obj["split"])


def load_questions(split: str | None = None, path: str | Path = QUESTIONS_PATH) -> list[Question]:
    """The questions of ``split`` ("dev", "test", or None for all), in file order."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    path = Path(path) if isinstance(path, str) else path  # a Path, or the shipped file (a Traversable)
    questions, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        q = _parse(line, f"{path.name} line {number}")
        if q.id in seen:
            raise ValueError(f"{path.name} line {number}: duplicate question id {q.id!r}")
        seen.add(q.id)
        questions.append(q)
    return [q for q in questions if split is None or q.split == split]


def validate(questions: list[Question], corpus_ids) -> None:
    """Raise ``ValueError`` naming every passage id that is not in ``corpus_ids``."""
    ids = set(corpus_ids)
    if not ids:
        raise ValueError("corpus_ids is empty: build the corpus before validating the question set")
    missing = {q.id: [p for p in q.passages if p not in ids] for q in questions}
    missing = {qid: ps for qid, ps in missing.items() if ps}
    if missing:
        shown = "; ".join(f"{qid}: {ps}" for qid, ps in list(missing.items())[:10])
        raise ValueError(f"{len(missing)} question(s) cite passage ids missing from the corpus: {shown}")


def answer_keywords(answer: str) -> list[str]:
    """Content words of a reference answer (lower case, ≥ 3 characters, stop words dropped)."""
    words = re.findall(r"[a-z_][a-z0-9_]*|\d+", answer.lower())
    return list(dict.fromkeys(w for w in words if len(w) >= 3 and w not in _STOPWORDS))


def _forms(word: str) -> set[str]:
    """The word and its bare stem ("returns" -> "return", "using" -> "us(e)", "created" -> "create")."""
    forms = {word}
    for suffix, repl in (("es", ""), ("s", ""), ("ing", ""), ("ing", "e"), ("ed", ""), ("d", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            forms.add(word[: -len(suffix)] + repl)
    return forms


def missing_keywords(question: Question, texts: dict[str, str]) -> list[str]:
    """Key words of the answer found in none of the question's passages (``[]``: supported).

    A passage is its text and its id (the id names the function: "json.dumps"); a word counts as found
    when it or its stem (plural, -ing, -ed dropped) occurs. Unanswerable questions have nothing to check.
    """
    joined = " ".join(f"{p.replace('.', ' ')} {texts[p]}" for p in question.passages).lower()
    return [w for w in answer_keywords(question.answer) if question.passages
            and not any(form in joined for form in _forms(w))]
