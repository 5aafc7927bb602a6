"""What every retriever returns: ranked :class:`Passage` objects (chunk id, document id, text, score).

The one retriever interface of the course (RAG chapter, the agent's search tool, the chains'
retriever)::

    retriever.search(query: str, k: int) -> list[Passage]      # best first
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk with its retriever's score; what every :class:`Retriever` returns, best first."""
    id: str        # chunk id, "<doc_id>#<i>"
    doc_id: str    # the document it came from (question sets label documents)
    title: str
    text: str
    score: float   # the retriever's score: BM25, cosine, RRF or P(yes); higher is better


@runtime_checkable
class Retriever(Protocol):
    """The course's one retriever interface: ``search(query, k)`` returns ``k`` passages, best first."""
    def search(self, query: str, k: int = 10) -> list[Passage]: ...


def check_query(query: object) -> str:
    """A non-empty string query (``TypeError`` / ``ValueError`` otherwise)."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError("query must be a non-empty string (got an empty or whitespace-only query)")
    return query


def check_k(k: object) -> int:
    """A positive int ``k`` (how many passages to return)."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")
    return k
