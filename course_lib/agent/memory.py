"""An agent's long-term memory: past steps embedded and kept in a vector-store collection.

AutoGPT (Significant Gravitas, 2023, ``autogpt/memory``) stored every step's text with its
embedding and put the most *relevant* memories, not the most recent, back into each prompt, so a
long run fits a fixed context. Here: texts are embedded by any ``embed(texts) -> (N, d) array``
(MiniLM in the chapter: :func:`minilm_embedder`), stored in a
:class:`course_lib.vectordb.store.Collection` (cosine metric) and retrieved by similarity to a query.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from course_lib.vectordb.store import VectorStore


def minilm_embedder(encoder=None) -> Callable[[list[str]], np.ndarray]:
    """``embed(texts) -> (N, 384)`` float32 with all-MiniLM-L6-v2 (loaded once when not given)."""
    if encoder is None:
        from course_lib.pretrained import minilm
        encoder = minilm()

    def embed(texts: list[str]) -> np.ndarray:
        return encoder.encode(list(texts)).detach().cpu().numpy().astype(np.float32)  # (N, 384)

    return embed


class AgentMemory:
    """``add`` texts (with a payload), ``relevant(query, k)`` returns the k most similar ones."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], store: VectorStore | None = None,
                 collection: str = "agent_memory"):
        if not callable(embed):
            raise TypeError(f"embed must be a callable texts -> (N, d) array, got {type(embed).__name__}")
        self.embed, self.store, self.name = embed, store or VectorStore(), collection
        self.collection = None  # created on the first add, when the embedding size is known

    def __len__(self) -> int:
        return 0 if self.collection is None else len(self.collection)

    def add(self, text: str, **payload) -> int:
        """Store ``text`` (payload fields kept beside it); returns its id (0, 1, 2, ...)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text must be a non-empty string, got {text!r}")
        vector = np.asarray(self.embed([text]), dtype=np.float32)  # (1, d)
        if self.collection is None:
            self.collection = self.store.create_collection(self.name, dim=vector.shape[1], metric="cosine")
        point = len(self.collection)
        self.collection.upsert([point], vector, [{"text": text, **payload}])
        return point

    def relevant(self, query: str, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` stored texts most similar to ``query`` (cosine), best first, as ``(text, score)``."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"query must be a non-empty string, got {query!r}")
        if self.collection is None:
            return []
        hits = self.collection.search(np.asarray(self.embed([query]), dtype=np.float32)[0], k=min(k, len(self)))
        return [(h.payload["text"], h.score) for h in hits]


__all__ = ["AgentMemory", "minilm_embedder"]
