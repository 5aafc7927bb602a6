"""Evaluate retrievers on a labelled question set: one table of recall@k, MRR and nDCG@10 per retriever.

A question is a :class:`~course_lib.rag.questions.Question` (or a dict) with ``question`` (text) and
``passages`` (the relevant document ids; empty for questions the corpus cannot answer, which are
left out of retrieval metrics and used for the refusal threshold). Each retriever returns chunks; :mod:`course_lib.rag.metrics` scores them at document level.
Everything is deterministic (exact search, greedy LLM scores); ``seed`` fixes torch and NumPy anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from course_lib.rag.metrics import evaluate_rankings
from course_lib.rag.types import Retriever, check_k


def _field(q, name: str):
    return q[name] if isinstance(q, Mapping) else getattr(q, name)


def retrieval_table(retrievers: Mapping[str, Retriever], questions: Sequence, k: int = 10,
                    corpus_doc_ids: Iterable[str] | None = None, seed: int = 0,
                    progress: bool = True) -> dict[str, dict[str, float]]:
    """``{retriever name: {"recall@1", "recall@5", "recall@10", "MRR", "nDCG@10"}}`` over the answerable ``questions``.

    With ``corpus_doc_ids``, first checks that every labelled document is in the corpus (``ValueError``).
    """
    questions = [q for q in questions if _field(q, "passages")]
    if not questions:
        raise ValueError("questions holds no answerable question (each needs at least one relevant passage id)")
    check_k(k)
    if corpus_doc_ids is not None:
        missing = sorted({p for q in questions for p in _field(q, "passages")} - set(corpus_doc_ids))
        if missing:
            raise ValueError(f"{len(missing)} relevant passage ids are missing from the corpus, e.g. {missing[:5]}; "
                             "index the documents the question set was labelled on")
    torch.manual_seed(seed)
    np.random.seed(seed)
    relevant = [list(_field(q, "passages")) for q in questions]
    table = {}
    for name, retriever in retrievers.items():
        rankings = [[p.doc_id for p in retriever.search(_field(q, "question"), k)]
                    for q in tqdm(questions, desc=name, disable=not progress)]
        table[name] = evaluate_rankings(rankings, relevant)
    return table


def choose_threshold(answerable: Sequence[float], unanswerable: Sequence[float]) -> float:
    """The score threshold that best separates answerable from unanswerable questions' top scores.

    Refuse when the top score is below the threshold; candidates are midpoints between sorted scores;
    ties in accuracy go to the lowest threshold (refuse less).
    """
    pos, neg = np.asarray(answerable, float), np.asarray(unanswerable, float)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("need top scores of at least one answerable and one unanswerable question")
    values = np.unique(np.concatenate([pos, neg]))
    candidates = np.concatenate([[values[0] - 1e-9], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-9]])
    accuracy = [((pos >= t).sum() + (neg < t).sum()) / (len(pos) + len(neg)) for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def answer_row(question, answer) -> dict:
    """One question's scores for :func:`course_lib.rag.answer_metrics.summarize` (and what was said, for reading).

    ``question``: a :class:`~course_lib.rag.questions.Question`; ``answer``: an
    :class:`~course_lib.rag.answer.Answer`. A reply that is not flagged as refused but reads as one
    ("I don't know ...") counts as a refusal.
    """
    from course_lib.rag.answer_metrics import answer_score, citation_scores, is_refusal

    refused = answer.refused or is_refusal(answer.text)
    cites = None if refused else citation_scores(answer.text, answer.passages)
    return {"id": question.id, "answerable": question.answerable, "refused": refused,
            "score": answer_score(answer.text, question.answer) if question.answerable and not refused else 0.0,
            "cite_recall": cites.recall if cites else None, "cite_precision": cites.precision if cites else None,
            "seconds": float(sum(answer.seconds.values())), "text": answer.text,
            "sources": [p.id for p in answer.passages]}
