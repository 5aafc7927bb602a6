"""Answer metrics of chapter 09: key-fact score, refusal precision / recall / F1, ALCE citation recall and precision.

All three are fixed here, before any test-split number is looked at, and pinned by hand-made cases in
``tests/test_rag_answer_metrics.py``:

- **answer score** (key-fact containment): the share of the reference answer's key words (content words,
  :func:`~course_lib.rag.questions.answer_keywords`) that the answer contains, a word counting when it or
  its stem (plural, -ing, -ed dropped) is one of the answer's words. A refusal scores 0. An answer
  *counts as correct* when it holds at least :data:`CORRECT` of the key words; that cut was checked
  against hand labels of dev answers (``course_lib/datasets/rag/answer_labels.jsonl``).
- **refusal precision / recall / F1**: the positive class is "refused". A refusal of an unanswerable
  question is a true positive, a refusal of an answerable one a false positive (it lowers precision), an
  answer to an unanswerable one a false negative.
- **citation recall and precision** as in ALCE (Gao et al. 2023, "Enabling Large Language Models to
  Generate Text with Citations", §2.3), with their NLI judge replaced by a lexical one (:func:`supports`:
  the sources hold ≥ :data:`SUPPORT` of the sentence's content words). Recall, per factual sentence: 1 when
  the sentence cites at least one source and its cited sources together support it; an uncited sentence
  scores 0. Precision, per citation: 1 when the cited source alone supports its sentence, or when the
  sentence's other citations do not support it without this one (ALCE's "irrelevant citation" test); a
  number with no such source scores 0. Both are averaged per answer, then over answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from course_lib.rag.questions import _STOPWORDS, _forms, answer_keywords
from course_lib.rag.types import Passage

CORRECT = 0.5      # key-word share at which an answer counts as correct (checked against hand labels)
SUPPORT = 0.5      # share of a sentence's content words its sources must hold to support it
CITE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[a-z_][a-z0-9_]*|\d+")
_REFUSAL = re.compile(r"\b(i don't know|i do not know|cannot answer|can't answer|do not cover|don't cover)\b")


def words(text: str) -> set[str]:
    """Every lower-case word of ``text`` and its stems (``json.dumps`` → json, dumps; "returns" → return)."""
    return {f for w in _WORD.findall(text.lower()) for f in _forms(w)}


def content_words(text: str) -> list[str]:
    """Words of ``text`` that carry content: ≥ 3 letters, not a number, not a stop word (citations removed)."""
    found = _WORD.findall(CITE.sub(" ", text).lower())
    return list(dict.fromkeys(w for w in found if len(w) >= 3 and not w.isdigit() and w not in _STOPWORDS))


def answer_score(answer: str, reference: str) -> float:
    """Share of the reference's key words found in ``answer`` (word or stem match), in [0, 1]."""
    if not isinstance(answer, str) or not isinstance(reference, str):
        raise TypeError("answer and reference must be str")
    keys = answer_keywords(reference)
    if not keys:
        raise ValueError(f"reference {reference!r} has no key words to look for")
    have = words(CITE.sub(" ", answer))
    return sum(bool(_forms(k) & have) for k in keys) / len(keys)


def is_refusal(text: str) -> bool:
    """Whether a free-text reply declines to answer ("I don't know", "cannot answer", "do not cover" ...)."""
    return bool(_REFUSAL.search(text.lower().replace("’", "'")))


def refusal_scores(refused: Sequence[bool], answerable: Sequence[bool]) -> dict[str, float]:
    """``{"precision", "recall", "f1", "refused", "unanswerable"}`` with "refused" as the positive class.

    Precision is 0 when nothing was refused (no refusal is right); recall needs ≥ 1 unanswerable question.
    """
    if len(refused) != len(answerable):
        raise ValueError(f"need one refused flag per question, got {len(refused)} for {len(answerable)}")
    tp = sum(r and not a for r, a in zip(refused, answerable))
    n_refused, n_neg = sum(map(bool, refused)), sum(not a for a in answerable)
    if n_neg == 0:
        raise ValueError("refusal recall needs at least one unanswerable question")
    precision = tp / n_refused if n_refused else 0.0
    recall = tp / n_neg
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "refused": n_refused, "unanswerable": n_neg}


def _texts(sources: Sequence[Passage | str]) -> list[str]:
    return [f"{s.title}\n{s.text}" if isinstance(s, Passage) else s for s in sources]


def supports(source_texts: Sequence[str], sentence: str) -> bool:
    """The lexical judge: the sources together hold ≥ :data:`SUPPORT` of the sentence's content words."""
    claim = content_words(sentence)
    if not claim:
        return True                       # nothing to support (a bare citation, "Yes.")
    if not source_texts:
        return False
    have = words(" ".join(source_texts))
    return sum(bool(_forms(w) & have) for w in claim) / len(claim) >= SUPPORT


def cited(sentence: str) -> list[int]:
    """Source numbers a sentence cites (``[2]``, ``[1, 3]``), in order, without repeats."""
    return list(dict.fromkeys(int(n) for m in CITE.finditer(sentence) for n in m.group(1).split(",")))


def sentences(text: str) -> list[str]:
    """The factual sentences of an answer: split on sentence ends and newlines, kept if they hold a content word.

    A citation written after the full stop (``... dict. [2]``) belongs to the sentence before it.
    """
    parts = [s.strip() for s in _SENTENCE.split(text) if s.strip()]
    merged: list[str] = []
    for s in parts:
        if merged and not content_words(s) and CITE.search(s):
            merged[-1] += " " + s
        else:
            merged.append(s)
    return [s for s in merged if content_words(s)]


@dataclass(frozen=True)
class CitationScores:
    """ALCE citation recall and precision of one answer, with the sentences that failed each."""
    recall: float | None          # None: no factual sentence
    precision: float | None       # None: no citation
    uncited: list[str]            # factual sentences without any citation
    unsupported: list[str]        # cited sentences their sources do not support
    imprecise: list[tuple[int, str]]   # (source number, sentence) citations that fail precision


def citation_scores(answer: str, sources: Sequence[Passage | str]) -> CitationScores:
    """Citation recall and precision of ``answer`` against its numbered ``sources`` ([1] is ``sources[0]``)."""
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a str, got {type(answer).__name__}")
    texts = _texts(sources)
    recall, precision, uncited, unsupported, imprecise = [], [], [], [], []
    for sentence in sentences(answer):
        numbers = cited(sentence)
        valid = [n for n in numbers if 1 <= n <= len(texts)]
        whole = bool(valid) and supports([texts[n - 1] for n in valid], sentence)
        recall.append(float(whole))
        if not numbers:
            uncited.append(sentence)
        elif not whole:
            unsupported.append(sentence)
        for n in numbers:
            ok = n in valid and (supports([texts[n - 1]], sentence) or
                                 (whole and not supports([texts[m - 1] for m in valid if m != n], sentence)))
            precision.append(float(ok))
            if not ok:
                imprecise.append((n, sentence))
    mean = lambda xs: sum(xs) / len(xs) if xs else None       # noqa: E731
    return CitationScores(mean(recall), mean(precision), uncited, unsupported, imprecise)


def summarize(rows: Sequence[dict]) -> dict[str, float | None]:
    """Table columns from per-question rows ``{"answerable", "refused", "score", "cite_recall", "cite_precision", "seconds"}``.

    ``answer score``: mean key-fact score over the answerable questions (refusals score 0); ``correct``: the
    share at ≥ :data:`CORRECT`; citation recall / precision: mean over answered questions that have a value;
    refusal precision / recall / F1 over all questions; ``s/question``: mean seconds.
    """
    if not rows:
        raise ValueError("rows is empty: answer at least one question")
    pos = [r for r in rows if r["answerable"]]
    mean = lambda xs: sum(xs) / len(xs) if xs else None       # noqa: E731
    out = {"answer score": mean([0.0 if r["refused"] else r["score"] for r in pos]),
           "correct": mean([float(not r["refused"] and r["score"] >= CORRECT) for r in pos]),
           "citation recall": mean([r["cite_recall"] for r in rows if not r["refused"] and r["cite_recall"] is not None]),
           "citation precision": mean([r["cite_precision"] for r in rows
                                       if not r["refused"] and r["cite_precision"] is not None])}
    if any(not r["answerable"] for r in rows):
        ref = refusal_scores([r["refused"] for r in rows], [r["answerable"] for r in rows])
        out.update({"refusal precision": ref["precision"], "refusal recall": ref["recall"], "refusal F1": ref["f1"]})
    out["s/question"] = mean([r["seconds"] for r in rows])
    out["questions"] = len(rows)
    return out
