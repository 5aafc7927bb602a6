"""One request's life in the :class:`~course_lib.serving.engine.Engine`: its queue of text pieces and its results.

The engine thread puts text pieces (and a final end marker) into the request's queue; the consumer
reads them by iterating (a thread) or with :meth:`Request.astream` (an asyncio loop, the HTTP
server). ``finish_reason`` is ``"stop"``, ``"length"``, ``"cancelled"``, ``"abort"`` (the engine
stopped) or ``"error"`` (``error`` says why).
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading

import torch

from course_lib.serving.params import SamplingParams
from course_lib.text_decoding import TextStream

_DONE = object()  # end-of-stream marker in a request's queue


class Request:
    """One request's life: iterate it (or :meth:`astream`) for text pieces; then read the results."""

    def __init__(self, rid: int, prompt_ids: list[int], params: SamplingParams, max_tokens: int,
                 loop: asyncio.AbstractEventLoop | None, tokenizer):
        self.id, self.prompt_ids, self.params, self.max_tokens = rid, prompt_ids, params, max_tokens
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        self.generator = torch.Generator().manual_seed(seed)  # this request's own random stream
        self.token_ids: list[int] = []
        self.finish_reason: str | None = None
        self.error: str | None = None  # why the request failed (finish_reason "error")
        self.detokenized = TextStream(tokenizer, params.stop)  # the engine pushes each token here
        self._cancelled = threading.Event()
        self._loop = loop
        self._queue = asyncio.Queue() if loop is not None else queue.Queue()

    @property
    def text(self) -> str:
        """The completion released so far (a stop string excluded)."""
        return self.detokenized.text

    @property
    def usage(self) -> dict:
        """OpenAI's ``usage``: prompt, completion and total token counts."""
        n, m = len(self.prompt_ids), len(self.token_ids)
        return {"prompt_tokens": n, "completion_tokens": m, "total_tokens": n + m}

    def cancel(self) -> None:
        """The client is gone: the engine retires this request (and frees its slot) at its next step."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def _put(self, item) -> None:  # engine thread -> consumer
        try:
            if self._loop is None:
                return self._queue.put(item)
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the consumer's event loop has closed: nobody listens any more
            self.cancel()

    def _end(self, reason: str) -> None:  # engine thread: the last event
        self.finish_reason = "error" if self.error is not None else reason
        self._put(_DONE)

    def __iter__(self):
        """Text pieces as they are released (blocking); ends when the request finishes."""
        if self._loop is not None:
            raise TypeError("this request was submitted with an event loop: use `async for p in req.astream()`")
        while (item := self._queue.get()) is not _DONE:
            yield item

    async def astream(self):
        """Text pieces as they are released (asyncio)."""
        while (item := await self._queue.get()) is not _DONE:
            yield item
