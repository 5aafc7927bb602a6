"""Retrieval metrics with document-level relevance: recall@k, MRR, nDCG@k (Järvelin & Kekäläinen 2002).

A question is labelled with the ids of the **documents** that answer it; retrievers return chunks.
A ranked list of chunks is first turned into a ranked list of documents: each chunk counts for its
``doc_id``, at the rank of the document's first chunk; later chunks of the same document are dropped
(otherwise one document split in five chunks would count five times).

- recall@k = |relevant ∩ top-k documents| / |relevant|
- MRR = mean over questions of 1 / rank of the first relevant document (0 if none is retrieved)
- nDCG@k = DCG@k / IDCG@k with binary gains, DCG@k = Σ_{i ≤ k} rel_i / log2(i + 1) (Järvelin &
  Kekäläinen 2002, §2.3, in the log2(i + 1) form that scikit-learn's ``ndcg_score`` uses)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def dedupe_docs(doc_ids: Iterable[str]) -> list[str]:
    """Document ids in first-occurrence order (a chunk ranking → a document ranking)."""
    return list(dict.fromkeys(doc_ids))


def _check(ranked: Sequence[str], relevant: Iterable[str], k: int | None) -> tuple[list[str], set[str]]:
    relevant = set(relevant)
    if not relevant:
        raise ValueError("relevant must hold at least one document id")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k <= 0):
        raise ValueError(f"k must be a positive int, got {k!r}")
    if isinstance(ranked, str):
        raise TypeError("ranked must be a sequence of document ids, not one string")
    return dedupe_docs(ranked), relevant


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of the relevant documents found in the first ``k`` distinct documents."""
    docs, relevant = _check(ranked, relevant, k)
    return len(relevant.intersection(docs[:k])) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str], k: int | None = None) -> float:
    """1 / rank of the first relevant document (ranks from 1), 0 when none appears (in the first ``k``)."""
    docs, relevant = _check(ranked, relevant, k)
    for rank, d in enumerate(docs[:k], start=1):
        if d in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int = 10) -> float:
    """Binary-gain nDCG@k; the ideal ranking puts all relevant documents first."""
    docs, relevant = _check(ranked, relevant, k)
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(docs[:k]) if d in relevant)
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / idcg


def evaluate_rankings(rankings: Sequence[Sequence[str]], relevant: Sequence[Iterable[str]],
                      ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Mean recall@k for each ``k``, MRR and nDCG@10 over questions (one ranking of doc ids each)."""
    if len(rankings) != len(relevant) or not rankings:
        raise ValueError(f"need one ranking per question, got {len(rankings)} rankings for {len(relevant)} questions")
    n = len(rankings)
    out = {f"recall@{k}": sum(recall_at_k(r, g, k) for r, g in zip(rankings, relevant)) / n for k in ks}
    out["MRR"] = sum(reciprocal_rank(r, g) for r, g in zip(rankings, relevant)) / n
    out["nDCG@10"] = sum(ndcg_at_k(r, g, 10) for r, g in zip(rankings, relevant)) / n
    return out
