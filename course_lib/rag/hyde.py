"""HyDE query rewriting (Gao et al. 2022, "Precise Zero-Shot Dense Retrieval without Relevance Labels", §3).

A short question and the passage that answers it look different to an embedding model. HyDE asks
an instruction-following LM to write a hypothetical passage that answers the question, embeds it,
and searches with that vector (the paper averages the vectors of the generated passages and of the
query, eq. 4; here one passage plus the query). The passage may be wrong in its facts: only its
vocabulary and form have to resemble the real one. The price is one generation per query, so
:class:`HydeRetriever` records the tokens and seconds it spent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from course_lib.chat import LocalChatModel
from course_lib.rag.dense import DenseRetriever
from course_lib.rag.types import Passage, check_k, check_query

PROMPT = "Write a short passage from the Python documentation that answers this question.\nQuestion: {question}"


@dataclass(frozen=True)
class Hypothetical:
    """The generated passage for one query and its cost: text, prompt / new tokens, wall seconds."""
    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float


class HydeRetriever:
    """Dense search with the mean of the query vector and a generated passage's vector."""

    def __init__(self, dense: DenseRetriever, model, tokenizer, max_new_tokens: int = 64):
        self.dense, self.model, self.tokenizer = dense, model, tokenizer
        self.max_new_tokens = check_k(max_new_tokens)
        self.last: Hypothetical | None = None     # the hypothetical passage and its cost, for the last query

    def hypothetical(self, query: str) -> Hypothetical:
        """SmolLM2's greedy passage for ``query`` (:data:`PROMPT`) through the chat interface, with its cost."""
        start = time.perf_counter()
        reply = LocalChatModel(self.model, self.tokenizer).chat(
            [{"role": "user", "content": PROMPT.format(question=query)}], max_tokens=self.max_new_tokens)
        return Hypothetical(reply.content.strip(), reply.usage["prompt_tokens"], reply.usage["completion_tokens"],
                            time.perf_counter() - start)

    def query_vector(self, query: str) -> np.ndarray:
        self.last = self.hypothetical(check_query(query))
        v = self.dense.embed_query(query) + self.dense.encoder.encode([self.last.text or query]).numpy()[0]
        return v / np.linalg.norm(v)

    def search(self, query: str, k: int = 10) -> list[Passage]:
        check_k(k)
        return self.dense.search_vector(self.query_vector(query), k)
