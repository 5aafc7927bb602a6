"""Hybrid retrieval: BM25 and dense rankings fused by reciprocal rank fusion (Cormack et al. 2009).

Lexical search finds exact names (``json.dumps``, ``__debug__``), dense search finds paraphrases;
their scores live on different scales, their ranks do not. Each retriever returns its top
``candidates`` chunks and :func:`course_lib.vectordb.hybrid.reciprocal_rank_fusion` (k = 60, the
paper's value) merges the id lists.
"""

from __future__ import annotations

from collections.abc import Sequence

from course_lib.rag.types import Passage, Retriever, check_k, check_query
from course_lib.vectordb.hybrid import reciprocal_rank_fusion


class HybridRetriever:
    """RRF over several retrievers; ``Passage.score`` is the fused score Σ 1 / (k_rrf + rank)."""

    def __init__(self, retrievers: Sequence[Retriever], candidates: int = 50, k_rrf: int = 60):
        if not retrievers:
            raise ValueError("retrievers must be a non-empty list of objects with search(query, k)")
        self.retrievers, self.candidates, self.k_rrf = list(retrievers), check_k(candidates), k_rrf

    def search(self, query: str, k: int = 10) -> list[Passage]:
        check_query(query)
        check_k(k)
        found: dict[str, Passage] = {}
        rankings = []
        for r in self.retrievers:
            hits = r.search(query, max(k, self.candidates))
            rankings.append([p.id for p in hits])
            for p in hits:
                found.setdefault(p.id, p)
        fused = reciprocal_rank_fusion(rankings, k=self.k_rrf)[:k]
        return [Passage(i, found[i].doc_id, found[i].title, found[i].text, s) for i, s in fused]
