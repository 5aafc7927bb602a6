"""Interop with the real ``langchain-core``: our runnables inside their chains and theirs inside ours.

:func:`to_langchain` wraps one of ours as a ``langchain_core.runnables.Runnable`` (``invoke``,
``batch``, ``stream``, and so ``|`` with any LangChain component); :func:`from_langchain` wraps one
of theirs as ours. At the border the values are translated (LCEL's types:
https://python.langchain.com/docs/concepts/runnables/ and .../messages/):

- into ours: a ``ChatPromptValue`` or a list of ``BaseMessage`` → OpenAI message dicts, a
  ``StringPromptValue`` → its string; a ``ChatReply`` going into theirs → an ``AIMessage``;
- out of ours: a :class:`~course_lib.chat.ChatReply` → an ``AIMessage`` (tool calls included);
  text pieces of a stream stay strings (their parsers accept strings).

``config`` crosses as LangChain's ``{"configurable": {...}}`` (e.g. a memory's ``session_id``).
"""

from __future__ import annotations

from collections.abc import Iterator

from langchain_core.messages import AIMessage, BaseMessage, convert_to_openai_messages
from langchain_core.prompt_values import ChatPromptValue, StringPromptValue
from langchain_core.runnables import Runnable as LCRunnable

from course_lib.chains.base import Runnable, check_batch, check_config
from course_lib.chat import ChatReply


def to_ours(value):
    """A LangChain value → the course's: prompt values and messages → OpenAI dicts or strings."""
    if isinstance(value, ChatPromptValue):
        return convert_to_openai_messages(value.to_messages())
    if isinstance(value, StringPromptValue):
        return value.to_string()
    if isinstance(value, list) and value and all(isinstance(m, BaseMessage) for m in value):
        return convert_to_openai_messages(value)
    return value


def to_theirs(value):
    """The course's value → LangChain's: a ``ChatReply`` → ``AIMessage``; anything else unchanged."""
    if isinstance(value, ChatReply):
        calls = [{"name": c.name, "args": c.arguments, "id": c.id, "type": "tool_call"} for c in value.tool_calls]
        return AIMessage(content=value.content, tool_calls=calls,
                         response_metadata={"finish_reason": value.finish_reason}, usage_metadata=_usage(value.usage))
    return value


def _usage(usage: dict):
    if not usage:
        return None
    return {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"]}


def _their_config(config) -> dict:
    config = check_config(config)
    return {k: config[k] for k in ("configurable", "max_concurrency") if k in config}


def _our_config(config) -> dict:
    return {"configurable": dict((config or {}).get("configurable", {}))}


class OursAsLangChain(LCRunnable):
    """One of our runnables as a ``langchain_core`` Runnable (``batch`` and ``transform`` come from theirs)."""

    def __init__(self, runnable: Runnable):
        if not isinstance(runnable, Runnable):
            raise TypeError(f"to_langchain takes a course_lib.chains Runnable, got {type(runnable).__name__}")
        self.runnable = runnable
        self.name = runnable.name

    def invoke(self, input, config=None, **kwargs):
        return to_theirs(self.runnable.invoke(to_ours(input), _our_config(config)))

    def stream(self, input, config=None, **kwargs) -> Iterator:
        for piece in self.runnable.stream(to_ours(input), _our_config(config)):
            yield to_theirs(piece)

    async def ainvoke(self, input, config=None, **kwargs):
        return to_theirs(await self.runnable.ainvoke(to_ours(input), _our_config(config)))


class LangChainRunnable(Runnable):
    """A ``langchain_core`` Runnable as one of ours: every call goes to theirs, streaming included."""

    def __init__(self, runnable: LCRunnable):
        if not isinstance(runnable, LCRunnable):
            raise TypeError(f"from_langchain takes a langchain_core Runnable, got {type(runnable).__name__}")
        self.runnable = runnable

    @property
    def name(self) -> str:
        return self.runnable.get_name()

    def invoke(self, input, config=None):
        return self.runnable.invoke(to_theirs(input), _their_config(config))

    def batch(self, inputs, config=None, *, max_concurrency=None, return_exceptions=False):
        check_batch(inputs, max_concurrency)
        config = {**_their_config(config), **({"max_concurrency": max_concurrency} if max_concurrency else {})}
        return self.runnable.batch([to_theirs(x) for x in inputs], config, return_exceptions=return_exceptions)

    def stream(self, input, config=None):
        yield from self.runnable.stream(to_theirs(input), _their_config(config))

    def transform(self, chunks, config=None):
        yield from self.runnable.transform((to_theirs(c) for c in chunks), _their_config(config))

    async def ainvoke(self, input, config=None):
        return await self.runnable.ainvoke(to_theirs(input), _their_config(config))

    async def astream(self, input, config=None):
        async for chunk in self.runnable.astream(to_theirs(input), _their_config(config)):
            yield chunk


def to_langchain(runnable: Runnable) -> OursAsLangChain:
    """One of our runnables as a ``langchain_core`` Runnable (see :class:`OursAsLangChain`)."""
    return OursAsLangChain(runnable)


def from_langchain(runnable: LCRunnable) -> LangChainRunnable:
    """A ``langchain_core`` Runnable as one of ours (see :class:`LangChainRunnable`)."""
    return LangChainRunnable(runnable)
