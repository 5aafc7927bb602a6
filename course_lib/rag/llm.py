"""The generator side of RAG: SmolLM2-Instruct through the course's one decoding interface.

:func:`complete` renders chat messages with SmolLM2's template, decodes greedily with
:func:`course_lib.generation.generate` (KV cache, stop at ``<|im_end|>``) and returns the text with
its cost; :func:`stream_chat` yields the same text piece by piece (:func:`course_lib.generation.stream`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from course_lib import generation, pretrained


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float


def _stop_id(tokenizer) -> int:
    return tokenizer.special_tokens["<|im_end|>"]


def chat_ids(tokenizer, messages: list[dict]) -> torch.Tensor:
    """``(1, T)`` prompt ids of ``messages`` with the assistant turn opened."""
    return torch.tensor([tokenizer.encode(pretrained.smollm2_chat_prompt(messages))])


def complete(model, tokenizer, messages: list[dict], max_new_tokens: int = 128) -> Completion:
    """Greedy answer to ``messages`` and what it cost (prompt / new tokens, wall seconds)."""
    ids = chat_ids(tokenizer, messages)
    start = time.perf_counter()
    out = generation.generate(model, ids, max_new_tokens, stop_tokens=[_stop_id(tokenizer)],
                              pad_token_id=_stop_id(tokenizer))[0, ids.shape[1]:]
    seconds = time.perf_counter() - start
    new = out.tolist()
    text = tokenizer.decode(new, skip_special_tokens=True).strip()
    return Completion(text, ids.shape[1], len(new), seconds)


def stream_chat(model, tokenizer, messages: list[dict], max_new_tokens: int = 128) -> Iterator[str]:
    """The same greedy answer as :func:`complete`, yielded as text pieces while it is generated."""
    ids = chat_ids(tokenizer, messages)
    yield from generation.stream(model, tokenizer, ids, max_new_tokens, stop_tokens=[_stop_id(tokenizer)],
                                 pad_token_id=_stop_id(tokenizer))
