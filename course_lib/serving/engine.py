"""Continuous batching: an engine thread that serves many requests with one decode step at a time.

Orca (Yu et al., OSDI'22 §3–4) schedules per *iteration*: between two decode steps, waiting
requests are prefilled into free slots and join the running batch, and finished ones (EOS, a stop
sequence, ``max_tokens``, a client gone) leave and free their slot at once, instead of a batch
waiting for its longest member. vLLM's scheduler (Kwon et al., SOSP'23 §4.5) keeps the same loop::

    while requests:
        admit waiting requests into free slots      # prefill each, sample its first token
        one decode step for every busy slot         # (n, 1) tokens -> (n, V) logits
        sample per request; emit text; retire finished requests

``Engine(model, tokenizer, slots=1)`` is the one-at-a-time queue (same code, one slot) that the
benchmark and chapter 13 compare against. Usage::

    with Engine(model, tok, slots=8) as engine:
        req = engine.submit("Once upon a time", SamplingParams(max_tokens=20, temperature=0))
        text = "".join(req)                # text pieces as they are generated (blocks)
        req.finish_reason, req.usage       # "stop" | "length" | "cancelled" | "abort", token counts

``async for piece in engine.submit(..., loop=asyncio.get_running_loop()).astream()`` is the
asyncio form (the HTTP server's). ``req.cancel()`` (a client gone) frees the slot at the next step.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import random
import threading
from collections import deque

import torch

from course_lib.generation import sample_next_token
from course_lib.serving.params import SamplingParams
from course_lib.serving.slots import SlotKVCache

_DONE = object()  # end-of-stream marker in a request's queue


class Request:
    """One request's life: iterate it (or :meth:`astream`) for text pieces; then read the results."""

    def __init__(self, rid: int, prompt_ids: list[int], params: SamplingParams, max_tokens: int,
                 loop: asyncio.AbstractEventLoop | None):
        self.id, self.prompt_ids, self.params, self.max_tokens = rid, prompt_ids, params, max_tokens
        seed = params.seed if params.seed is not None else random.getrandbits(63)
        self.generator = torch.Generator().manual_seed(seed)  # this request's own random stream
        self.token_ids: list[int] = []
        self.text = ""  # the released completion so far (stop sequence excluded)
        self.finish_reason: str | None = None
        self._decoded = ""
        self._cancelled = threading.Event()
        self._loop = loop
        self._queue = asyncio.Queue() if loop is not None else queue.Queue()

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
        self.finish_reason = reason
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


class Engine:
    """A continuous-batching server core over ``slots`` KV-cache slots of ``max_len`` positions.

    ``model`` is a ``LlamaForCausalLM`` (it needs ``decode_rows``), ``tokenizer`` has ``encode`` and
    ``decode(ids, skip_special_tokens=True)``. ``stop_token_ids`` end a request (default: the
    model's ``eos_token_id`` and the tokenizer's ``<|endoftext|>``). ``default_max_tokens`` caps
    requests that give no ``max_tokens``.
    """

    def __init__(self, model, tokenizer, slots: int = 8, max_len: int = 1024, stop_token_ids=None,
                 default_max_tokens: int = 256):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.cache = SlotKVCache.for_model(model, slots, max_len)
        if stop_token_ids is None:
            end_of_text = getattr(tokenizer, "special_tokens", {}).get("<|endoftext|>")
            stop_token_ids = {model.config.eos_token_id} | ({end_of_text} if end_of_text is not None else set())
        self.stop_token_ids = frozenset(stop_token_ids)
        self.default_max_tokens = default_max_tokens
        self._waiting: deque[Request] = deque()
        self._running: list[Request] = []  # request in slot b is _running[b]
        self._ids = itertools.count()
        self._cv = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.steps = 0  # decode steps run (each serves every busy slot)

    slots = property(lambda self: self.cache.slots, doc="Number of KV-cache slots (the most requests at once).")
    max_len = property(lambda self: self.cache.max_len, doc="Positions per slot (prompt + completion).")

    def stats(self) -> dict:
        """Busy and free slots, waiting requests, decode steps so far."""
        with self._cv:
            busy = len(self._running)
            return {"slots": self.slots, "busy_slots": busy, "free_slots": self.slots - busy,
                    "waiting": len(self._waiting), "steps": self.steps}

    def start(self) -> Engine:
        """Start the engine thread (idempotent)."""
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="serving-engine", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread; requests still waiting or running finish with ``finish_reason="abort"``."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    __enter__ = start

    def __exit__(self, *exc) -> None:
        self.stop()

    def submit(self, prompt: str | list[int], params: SamplingParams | None = None,
               loop: asyncio.AbstractEventLoop | None = None) -> Request:
        """Queue a prompt (text or token ids); ``loop``: deliver pieces to that asyncio loop.

        Raises ``ValueError`` when the prompt plus ``max_tokens`` do not fit one slot (``max_len``).
        """
        params = params or SamplingParams()
        ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        room = self.max_len - len(ids)
        if not ids or room < 1 or (params.max_tokens or 1) > room:
            raise ValueError(f"prompt of {len(ids)} tokens + max_tokens={params.max_tokens} does not fit the "
                             f"context of {self.max_len} tokens per slot; shorten the prompt or lower max_tokens")
        request = Request(next(self._ids), ids, params, params.max_tokens or min(room, self.default_max_tokens), loop)
        with self._cv:
            if self._stopping or self._thread is None:
                raise RuntimeError("the engine is not running: call start() (or use it as a context manager)")
            self._waiting.append(request)
            self._cv.notify()
        return request

    def complete(self, prompt: str | list[int], params: SamplingParams | None = None) -> Request:
        """Submit and wait: the finished request (``.text``, ``.finish_reason``, ``.usage``)."""
        request = self.submit(prompt, params)
        list(request)  # wait for the end of the stream
        return request

    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cv:
                    while not self._stopping and not self._waiting and not self._running:
                        self._cv.wait()
                    if self._stopping:
                        break
                self._admit()
                if self._running:
                    self._decode()
        with self._cv:
            for request in [*self._running, *self._waiting]:
                request._end("abort")
            self._running.clear()
            self._waiting.clear()

    def _admit(self) -> None:
        """Prefill waiting requests into free slots, together (they join the batch before the next step)."""
        with self._cv:
            joining = []
            while self._waiting and len(self._running) + len(joining) < self.slots:
                joining.append(self._waiting.popleft())
            gone = [r for r in joining if r.cancelled]
            joining = [r for r in joining if not r.cancelled]
            first = len(self._running)
            self._running.extend(joining)
        for request in gone:
            request._end("cancelled")
        if joining:
            slots = list(range(first, first + len(joining)))
            logits = self.cache.prefill(self.model, slots, [r.prompt_ids for r in joining])  # (k, V)
            tokens = self._sample(joining, logits)
            self._retire([s for s, r, t in zip(slots, joining, tokens) if self._accept(r, t)])

    def _decode(self) -> None:
        """One step for every busy slot; then retire the finished ones."""
        last = torch.tensor([[r.token_ids[-1]] for r in self._running])  # (n, 1)
        logits = self.cache.decode(self.model, last)  # (n, V)
        self.steps += 1
        tokens = self._sample(self._running, logits)
        self._retire([b for b, (r, t) in enumerate(zip(self._running, tokens)) if self._accept(r, t)])

    @staticmethod
    def _sample(requests: list[Request], logits: torch.Tensor) -> list[int]:
        """One token per row of ``logits`` ``(n, V)``: one argmax for all, each sampled row with its own generator."""
        tokens = logits.argmax(dim=-1).tolist()  # (n,) greedy
        for b, r in enumerate(requests):
            p = r.params
            if p.temperature > 0:
                top_p = p.top_p if p.top_p < 1 else None
                tokens[b] = int(sample_next_token(logits[b:b + 1], p.temperature, None, top_p, r.generator)[0])
        return tokens

    def _accept(self, request: Request, token: int) -> bool:
        """Record ``token``, release text, and say whether the request has finished."""
        if request.cancelled:
            request.finish_reason = "cancelled"
            return True
        if token in self.stop_token_ids:
            return self._flush(request, request._decoded, "stop")
        request.token_ids.append(token)
        decoded = request._decoded = self.tokenizer.decode(request.token_ids, skip_special_tokens=True)
        hits = [i for i in (decoded.find(s, max(0, len(request.text) - len(s))) for s in request.params.stop)
                if i >= 0]
        if hits:
            return self._flush(request, decoded[:min(hits)], "stop")
        if len(request.token_ids) >= request.max_tokens:
            return self._flush(request, decoded, "length")
        safe = len(decoded) - _held_back(decoded, request.params.stop)
        safe = min(safe, len(decoded.rstrip("\ufffd")))  # a UTF-8 character split across tokens: wait
        self._flush(request, decoded[:safe], None)
        return False

    def _flush(self, request: Request, text: str, reason: str | None) -> bool:
        if len(text) > len(request.text):
            request._put(text[len(request.text):])
            request.text = text
        request.finish_reason = reason
        return reason is not None

    def _retire(self, slots: list[int], reason: str | None = None) -> None:
        """Free ``slots`` (descending); the last busy slot moves into each hole, keeping 0..n-1 busy."""
        with self._cv:
            for b in sorted(slots, reverse=True):
                request, last = self._running[b], len(self._running) - 1
                if b != last:
                    self.cache.move(last, b)
                    self._running[b] = self._running[last]
                else:
                    self.cache.free(b)
                self._running.pop()
                request._end(reason or request.finish_reason)


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """Characters at the end of ``text`` that could start a stop sequence (not released yet)."""
    return max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
