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
        req.finish_reason, req.usage       # "stop" | "length" | "cancelled" | "abort" | "error", token counts

``async for piece in engine.submit(..., loop=asyncio.get_running_loop()).astream()`` is the
asyncio form (the HTTP server's). ``req.cancel()`` (a client gone) frees the slot at the next step.

Failures stay local: an exception while sampling or detokenising one request ends that request
(``finish_reason="error"``, ``req.error`` says why), one in a batched forward ends the requests of
that forward, and the engine goes on serving the rest. Should the thread itself die, every open
request ends with ``"error"``, :attr:`Engine.alive` turns false and :meth:`Engine.submit` refuses.
A temperature so small that ``logits / T`` overflows is its limit T → 0: greedy.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque

import torch

from course_lib.generation import sample_next_token
from course_lib.serving.params import SamplingParams
from course_lib.serving.request import Request
from course_lib.serving.slots import SlotKVCache


class ContextLengthError(ValueError):
    """The prompt (plus ``max_tokens``) does not fit one slot: OpenAI's ``context_length_exceeded``."""


class Engine:
    """A continuous-batching server core over ``slots`` KV-cache slots of ``max_len`` positions.

    ``model`` is a ``LlamaForCausalLM`` (it needs ``decode_rows``), ``tokenizer`` has ``encode`` and
    ``decode(ids, skip_special_tokens=True)`` (and ``decode_bytes`` for a byte-level BPE: each request's
    text is detokenised one token at a time by :class:`~course_lib.text_decoding.TextStream`). ``stop_token_ids`` end a request (default: the
    model's ``eos_token_id`` and the tokenizer's ``<|endoftext|>``). ``default_max_tokens`` caps
    requests that give no ``max_tokens``. :attr:`max_prompt_chars` bounds a text prompt before it
    is tokenised: no token is longer than the vocabulary's longest string, so a longer text cannot fit.
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
        vocab = getattr(tokenizer, "vocab", None)
        self.max_prompt_chars = max_len * max(map(len, vocab)) if vocab else None  # None: no bound known
        self.error: str | None = None  # why the engine thread died, if it did
        self._waiting: deque[Request] = deque()
        self._running: list[Request] = []  # request in slot b is _running[b]
        self._ids = itertools.count()
        self._cv = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.steps = 0  # decode steps run (each serves every busy slot)

    slots = property(lambda self: self.cache.slots, doc="Number of KV-cache slots (the most requests at once).")
    max_len = property(lambda self: self.cache.max_len, doc="Positions per slot (prompt + completion).")

    @property
    def alive(self) -> bool:
        """Whether the engine thread runs and takes requests (false before start, after stop or a crash)."""
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def stats(self) -> dict:
        """Busy and free slots, waiting requests, decode steps so far."""
        with self._cv:
            busy = len(self._running)
            return {"slots": self.slots, "busy_slots": busy, "free_slots": self.slots - busy,
                    "waiting": len(self._waiting), "steps": self.steps}

    def start(self) -> Engine:
        """Start the engine thread (idempotent)."""
        if self._thread is None:
            self._stopping, self.error = False, None
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

        Raises :class:`ContextLengthError` (a ``ValueError``) when the prompt plus ``max_tokens`` do
        not fit one slot (``max_len``), ``ValueError`` when the text cannot be encoded, and
        ``RuntimeError`` when the engine is not running. Tokenising takes time: call it off an event loop.
        """
        params = params or SamplingParams()
        if not self.alive:
            raise RuntimeError(self._not_running())
        too_long = isinstance(prompt, str) and self.max_prompt_chars is not None and len(prompt) > self.max_prompt_chars
        ids = [] if too_long else self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        room = self.max_len - len(ids)
        if not ids or room < 1 or (params.max_tokens or 1) > room:
            size = f"{len(prompt)} characters" if too_long else f"{len(ids)} tokens"
            raise ContextLengthError(f"prompt of {size} + max_tokens={params.max_tokens} does not fit the "
                                     f"context of {self.max_len} tokens per slot; shorten the prompt or lower "
                                     "max_tokens")
        request = Request(next(self._ids), ids, params, params.max_tokens or min(room, self.default_max_tokens), loop,
                          self.tokenizer)
        with self._cv:
            if not self.alive:
                raise RuntimeError(self._not_running())
            self._waiting.append(request)
            self._cv.notify()
        return request

    def _not_running(self) -> str:
        if self.error is not None:
            return f"the engine has stopped after an internal error ({self.error})"
        return "the engine is not running: call start() (or use it as a context manager)"

    def complete(self, prompt: str | list[int], params: SamplingParams | None = None) -> Request:
        """Submit and wait: the finished request (``.text``, ``.finish_reason``, ``.usage``)."""
        request = self.submit(prompt, params)
        list(request)  # wait for the end of the stream
        return request

    def _loop(self) -> None:
        try:
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
        except BaseException as exc:  # the thread dies: say why, and end every open request below
            self.error = _describe(exc)
        finally:
            with self._cv:
                self._stopping = True
                for request in [*self._running, *self._waiting]:
                    request.error = request.error or self.error
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
            try:
                logits = self.cache.prefill(self.model, slots, [r.prompt_ids for r in joining])  # (k, V)
            except Exception as exc:  # this prefill's requests fail; the running ones go on
                return self._fail(slots, exc)
            tokens = self._sample(joining, logits)
            self._retire([s for s, r, t in zip(slots, joining, tokens) if self._accept(r, t)])

    def _decode(self) -> None:
        """One step for every busy slot; then retire the finished ones."""
        try:
            last = torch.tensor([[r.token_ids[-1]] for r in self._running])  # (n, 1)
            logits = self.cache.decode(self.model, last)  # (n, V)
        except Exception as exc:
            return self._fail(list(range(len(self._running))), exc)
        self.steps += 1
        tokens = self._sample(self._running, logits)
        self._retire([b for b, (r, t) in enumerate(zip(self._running, tokens)) if self._accept(r, t)])

    def _fail(self, slots: list[int], exc: BaseException) -> None:
        for b in slots:
            self._running[b].error = _describe(exc)
        self._retire(slots, "error")

    @staticmethod
    def _sample(requests: list[Request], logits: torch.Tensor) -> list[int]:
        """One token per row of ``logits`` ``(n, V)``: one argmax for all, each sampled row with its own generator.

        A row whose ``logits / temperature`` would overflow (e.g. ``temperature=1e-40``) stays greedy,
        the limit of sampling as T → 0. A failure marks only its own request (``error``).
        """
        tokens = logits.argmax(dim=-1).tolist()  # (n,) greedy
        largest = torch.finfo(logits.dtype).max
        for b, r in enumerate(requests):
            p = r.params
            if p.temperature > 0 and float(logits[b].abs().max()) / p.temperature <= largest:
                top_p = p.top_p if p.top_p < 1 else None
                try:
                    tokens[b] = int(sample_next_token(logits[b:b + 1], p.temperature, None, top_p, r.generator)[0])
                except Exception as exc:
                    r.error = _describe(exc)
        return tokens

    def _accept(self, request: Request, token: int) -> bool:
        """Record ``token``, release text, and say whether the request has finished."""
        if request.cancelled or request.error is not None:
            request.finish_reason = "cancelled" if request.error is None else "error"
            return True
        try:
            return self._release(request, token)
        except Exception as exc:
            request.error, request.finish_reason = _describe(exc), "error"
            return True

    def _release(self, request: Request, token: int) -> bool:
        """Push ``token`` through the request's :class:`~course_lib.text_decoding.TextStream` (one decode per token)."""
        text = request.detokenized
        if token in self.stop_token_ids:
            return self._emit(request, text.finish(), "stop")
        request.token_ids.append(token)
        piece = text.push(token)
        if text.stopped:
            return self._emit(request, piece, "stop")
        if len(request.token_ids) >= request.max_tokens:
            return self._emit(request, piece + text.finish(), "length")
        return self._emit(request, piece, None)

    @staticmethod
    def _emit(request: Request, piece: str, reason: str | None) -> bool:
        if piece:
            request._put(piece)
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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"

