"""The Runnable protocol and its composition: ``|`` sequences, parallel dicts, lambdas, passthrough.

The reference design is LangChain's LCEL (LangChain Expression Language,
https://python.langchain.com/docs/concepts/lcel/ and https://python.langchain.com/docs/concepts/runnables/):
every step is a :class:`Runnable` with ``invoke`` / ``batch`` / ``stream`` (and ``ainvoke`` /
``abatch`` / ``astream``), ``a | b`` builds a :class:`RunnableSequence`, a dict literal in a pipe
becomes a :class:`RunnableParallel` and a plain function a :class:`RunnableLambda`.

Streaming passes through a sequence: the first step streams, every later step *transforms* the
stream of its input chunks (``transform``). A step that cannot work on pieces (a lambda, a
prompt) collects its input first; a step that can (a model after its prompt, a string parser)
yields as the pieces arrive, so ``prompt | model | StrOutputParser()`` streams tokens.

An ``async def`` function becomes a lambda that only runs asynchronously: ``ainvoke`` awaits it
(sequences and parallel dicts pass ``ainvoke`` down to every step), while ``invoke`` refuses it
with a ``TypeError``, as langchain-core's ``RunnableLambda`` does.

``config`` is a plain dict as in LangChain (``{"configurable": {"session_id": ...}}``); every step
of a chain receives the same one.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

from course_lib.chains.flow import check_batch, check_config, combine_chunks
from course_lib.chains.graph import Graph


class Runnable:
    """A unit of work: ``invoke`` one input; ``batch``, ``stream`` and the async forms derive from it."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def invoke(self, input, config: dict | None = None):
        raise NotImplementedError(f"{self.name} must implement invoke(input, config=None)")

    def stream(self, input, config: dict | None = None) -> Iterator:
        """Yield the output in pieces; by default in one piece."""
        yield self.invoke(input, config)

    def transform(self, chunks: Iterator, config: dict | None = None) -> Iterator:
        """Stream from a stream of input pieces; by default collect them first (``combine_chunks``)."""
        yield from self.stream(combine_chunks(list(chunks)), config)

    def batch(self, inputs: list, config: dict | None = None, *, max_concurrency: int | None = None,
              return_exceptions: bool = False) -> list:
        """``invoke`` every input on a thread pool of ``max_concurrency`` workers; outputs keep the input order.

        With ``return_exceptions`` an input's exception takes its place in the output list (LangChain's
        semantics); without it the first failing input's exception is raised.
        """
        check_batch(inputs, max_concurrency)
        if not inputs:
            return []

        def one(x):
            try:
                return self.invoke(x, config)
            except Exception as e:
                if return_exceptions:
                    return e
                raise
        with ThreadPoolExecutor(max_workers=min(max_concurrency or len(inputs), len(inputs))) as pool:
            return list(pool.map(one, inputs))

    async def ainvoke(self, input, config: dict | None = None):
        return await asyncio.to_thread(self.invoke, input, config)

    async def abatch(self, inputs: list, config: dict | None = None, *, max_concurrency: int | None = None,
                     return_exceptions: bool = False) -> list:
        """``ainvoke`` every input, at most ``max_concurrency`` at a time; arguments as in :meth:`batch`."""
        check_batch(inputs, max_concurrency)
        semaphore = asyncio.Semaphore(max_concurrency or max(len(inputs), 1))

        async def one(x):
            async with semaphore:
                try:
                    return await self.ainvoke(x, config)
                except Exception as e:
                    if return_exceptions:
                        return e
                    raise
        return list(await asyncio.gather(*(one(x) for x in inputs)))

    async def astream(self, input, config: dict | None = None) -> AsyncIterator:
        """The sync stream, each ``next`` run on a worker thread so the event loop never blocks."""
        iterator, done = self.stream(input, config), object()
        while (chunk := await asyncio.to_thread(next, iterator, done)) is not done:
            yield chunk

    def __or__(self, other) -> RunnableSequence:
        return RunnableSequence(self, coerce(other))

    def __ror__(self, other) -> RunnableSequence:
        return RunnableSequence(coerce(other), self)

    def pipe(self, *others) -> RunnableSequence:
        return RunnableSequence(self, *others)

    def graph(self) -> Graph:
        """Nodes and edges from ``<name>Input`` to ``<name>Output``; draw it with ``course_lib.viz.chain_graph``."""
        g = Graph()
        start = g.add(f"{self.name}Input")
        g.add(f"{self.name}Output", self._draw(g, [start]))
        return g

    def _draw(self, g: Graph, sources: list[int]) -> list[int]:
        """Add this step's nodes after ``sources``; return the nodes the next step hangs from."""
        return [g.add(self.name, sources)]

    def __repr__(self) -> str:
        return f"{self.name}()"


def coerce(thing) -> Runnable:
    """What may stand in a pipe: a Runnable, a dict (→ :class:`RunnableParallel`), a callable (→ :class:`RunnableLambda`)."""
    if isinstance(thing, Runnable):
        return thing
    if isinstance(thing, Mapping):
        return RunnableParallel(thing)
    if callable(thing):
        return RunnableLambda(thing)
    raise TypeError(f"cannot compose {type(thing).__name__!r} into a chain: expected a Runnable, a callable or a "
                    "dict of them")


class RunnableSequence(Runnable):
    """``a | b | c``: each step's output is the next step's input (nested sequences are flattened)."""

    def __init__(self, *steps):
        flat: list[Runnable] = []
        for step in map(coerce, steps):
            flat.extend(step.steps if isinstance(step, RunnableSequence) else [step])
        if len(flat) < 2:
            raise ValueError(f"RunnableSequence needs at least 2 steps, got {len(flat)}")
        self.steps = flat

    @property
    def first(self) -> Runnable:
        return self.steps[0]

    @property
    def last(self) -> Runnable:
        return self.steps[-1]

    def invoke(self, input, config=None):
        config = check_config(config)
        for step in self.steps:
            input = step.invoke(input, config)
        return input

    async def ainvoke(self, input, config=None):
        config = check_config(config)
        for step in self.steps:
            input = await step.ainvoke(input, config)
        return input

    def stream(self, input, config=None):
        config = check_config(config)
        chunks = self.first.stream(input, config)
        for step in self.steps[1:]:
            chunks = step.transform(chunks, config)
        yield from chunks

    def transform(self, chunks, config=None):
        for step in self.steps:
            chunks = step.transform(chunks, config)
        yield from chunks

    def _draw(self, g, sources):
        for step in self.steps:
            sources = step._draw(g, sources)
        return sources

    def __repr__(self):
        return "\n| ".join(map(repr, self.steps))


class RunnableParallel(Runnable):
    """``{"a": r1, "b": r2}``: every branch gets the same input; the output is ``{"a": r1(x), "b": r2(x)}``.

    Branches run on a thread pool, as in LangChain."""

    def __init__(self, steps: Mapping | None = None, **kwargs):
        steps = {**(steps or {}), **kwargs}
        if not steps:
            raise ValueError("RunnableParallel needs at least one branch, e.g. {'context': retriever, 'question': ...}")
        if not all(isinstance(k, str) for k in steps):
            raise TypeError(f"RunnableParallel keys must be strings, got {list(steps)!r}")
        self.steps = {k: coerce(v) for k, v in steps.items()}

    @property
    def name(self) -> str:
        return f"RunnableParallel<{','.join(self.steps)}>"

    def invoke(self, input, config=None):
        config = check_config(config)
        with ThreadPoolExecutor(max_workers=len(self.steps)) as pool:
            futures = {k: pool.submit(step.invoke, input, config) for k, step in self.steps.items()}
            return {k: f.result() for k, f in futures.items()}

    async def ainvoke(self, input, config=None):
        config = check_config(config)
        outputs = await asyncio.gather(*(step.ainvoke(input, config) for step in self.steps.values()))
        return dict(zip(self.steps, outputs))

    def _draw(self, g, sources):
        start = g.add(f"{self.name}Input", sources)
        ends = [end for step in self.steps.values() for end in step._draw(g, [start])]
        return [g.add(f"{self.name}Output", ends)]


def _async_kind(func: Callable) -> str | None:
    """``"coroutine"`` for an ``async def`` (or a ``functools.partial`` of one, or an object whose ``__call__``
    is one), ``"generator"`` for an async generator function, ``None`` for a plain function."""
    for f in (func, type(func).__call__):
        if inspect.iscoroutinefunction(f):
            return "coroutine"
        if inspect.isasyncgenfunction(f):
            return "generator"
    return None


class RunnableLambda(Runnable):
    """A plain function as a step. ``func(input)`` or ``func(input, config)``; a Runnable it returns is invoked.

    An ``async def`` function runs only through ``ainvoke`` / ``abatch`` / ``astream`` (langchain-core's rule)."""

    def __init__(self, func: Callable, name: str | None = None):
        if not callable(func) or isinstance(func, Runnable):
            raise TypeError(f"RunnableLambda takes a plain callable, got {type(func).__name__}")
        if _async_kind(func) == "generator":
            raise TypeError("RunnableLambda takes a function or an async def function, not an async generator")
        self.func, self._name = func, name or getattr(func, "__name__", "RunnableLambda")
        self.is_async = _async_kind(func) == "coroutine"
        try:
            self._takes_config = "config" in inspect.signature(func).parameters
        except (TypeError, ValueError):  # builtins without a signature
            self._takes_config = False

    @property
    def name(self) -> str:
        return self._name

    def _call(self, input, config: dict):
        return self.func(input, config=config) if self._takes_config else self.func(input)

    def invoke(self, input, config=None):
        if self.is_async:
            raise TypeError(f"Cannot invoke a coroutine function synchronously: {self.name} is an async def; "
                            "use `ainvoke` (or `abatch`) instead")
        config = check_config(config)
        out = self._call(input, config)
        return out.invoke(input, config) if isinstance(out, Runnable) else out

    async def ainvoke(self, input, config=None):
        """Await an ``async def`` (a plain function runs on a worker thread); a Runnable it returns is awaited too."""
        config = check_config(config)
        out = await (self._call(input, config) if self.is_async else asyncio.to_thread(self._call, input, config))
        return await out.ainvoke(input, config) if isinstance(out, Runnable) else out

    async def astream(self, input, config=None) -> AsyncIterator:
        yield await self.ainvoke(input, config)  # a lambda's output is one piece, as in stream()

    def __repr__(self):
        return f"RunnableLambda({self.name})"
