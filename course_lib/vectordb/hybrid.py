"""Reciprocal rank fusion (Cormack, Clarke & Büttcher 2009): merge rankings without calibrating scores.

``score(d) = Σ_r 1 / (k + rank_r(d))`` with ranks starting at 1 and ``k = 60`` from the paper.
Dense cosine scores and BM25 scores live on different scales; ranks do not. Used by the store's
hybrid search and by the RAG chapter.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable


def reciprocal_rank_fusion(rankings: Iterable[list[Hashable]], k: int = 60) -> list[tuple[Hashable, float]]:
    """Fuse ranked id lists (best first) into ``[(id, fused score)]``, best first; ties keep first-seen order."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}")
    fused: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])


def rank_by_score(scores: dict[Hashable, float]) -> list[Hashable]:
    """Ids sorted by descending score (a lexical retriever's ranking)."""
    return [item for item, _ in sorted(scores.items(), key=lambda kv: -kv[1])]
