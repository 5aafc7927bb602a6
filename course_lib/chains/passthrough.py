"""The identity step and its ``assign``: pass the input on, or add keys to a dict input.

LangChain's ``RunnablePassthrough`` and ``RunnablePassthrough.assign`` (``RunnableAssign``,
https://python.langchain.com/docs/how_to/passthrough/): ``{"context": retriever, "question":
RunnablePassthrough()}`` feeds a question to two branches; ``.assign(answer=chain)`` keeps the
input dict and adds the branch's output under a new key.
"""

from __future__ import annotations

from collections.abc import Mapping

from course_lib.chains.base import Runnable, RunnableParallel


class RunnablePassthrough(Runnable):
    """The identity: passes its input on (and streams it through untouched)."""

    def invoke(self, input, config=None):
        return input

    def transform(self, chunks, config=None):
        yield from chunks

    @staticmethod
    def assign(**kwargs) -> RunnableAssign:
        """``{**input, key: runnable(input), ...}``: add keys to a dict input."""
        return RunnableAssign(RunnableParallel(kwargs))


class RunnableAssign(Runnable):
    """``RunnablePassthrough.assign(k=r)``: the input dict plus the parallel branches' outputs."""

    def __init__(self, mapper: RunnableParallel):
        self.mapper = mapper

    @property
    def name(self) -> str:
        return f"RunnableAssign<{','.join(self.mapper.steps)}>"

    def _check(self, input) -> Mapping:
        if not isinstance(input, Mapping):
            raise TypeError(f"{self.name} needs a dict input to add keys to, got {type(input).__name__}")
        return input

    def invoke(self, input, config=None):
        return {**self._check(input), **self.mapper.invoke(input, config)}

    async def ainvoke(self, input, config=None):
        return {**self._check(input), **await self.mapper.ainvoke(input, config)}

    def _draw(self, g, sources):
        return self.mapper._draw(g, sources)
