"""The generator side of RAG: SmolLM2-Instruct through the course's chat interface.

:func:`complete` sends chat messages to :class:`course_lib.chat.LocalChatModel` (SmolLM2's template,
greedy decoding with the KV cache through :mod:`course_lib.generation`, stop at ``<|im_end|>``) and
returns the text with its cost; :func:`stream_chat` yields the same text piece by piece.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from course_lib.chat import LocalChatModel


@dataclass(frozen=True)
class Completion:
    """One generated answer and its cost: text, prompt tokens, new tokens and wall seconds."""
    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float


def complete(model, tokenizer, messages: list[dict], max_new_tokens: int = 128, constraint=None) -> Completion:
    """Greedy answer to ``messages`` and what it cost (prompt / new tokens, wall seconds).

    ``constraint`` is :class:`~course_lib.chat.LocalChatModel`'s hook: ``(messages, tools) -> logits processor``
    (e.g. :class:`course_lib.rag.answer.CiteFirst`), called once per reply.
    """
    start = time.perf_counter()
    reply = LocalChatModel(model, tokenizer, constraint=constraint).chat(messages, max_tokens=max_new_tokens)
    seconds = time.perf_counter() - start
    return Completion(reply.content.strip(), reply.usage["prompt_tokens"], reply.usage["completion_tokens"],
                      seconds)


def stream_chat(model, tokenizer, messages: list[dict], max_new_tokens: int = 128, constraint=None) -> Iterator[str]:
    """The same greedy answer as :func:`complete`, yielded as text pieces while it is generated."""
    yield from LocalChatModel(model, tokenizer, constraint=constraint).stream(messages, max_tokens=max_new_tokens)
