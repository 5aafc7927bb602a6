"""LangChain by hand: Runnables composed with ``|`` (LCEL, https://python.langchain.com/docs/concepts/lcel/).

- :mod:`~course_lib.chains.base`: ``Runnable`` (invoke/batch/stream/async), sequence, parallel, lambda
- :mod:`~course_lib.chains.passthrough`: ``RunnablePassthrough`` and its ``assign``
- :mod:`~course_lib.chains.prompts`: ``PromptTemplate``, ``ChatPromptTemplate``, ``MessagesPlaceholder``
- :mod:`~course_lib.chains.models`: ``ChatModelRunnable`` over :class:`course_lib.chat.ChatModel`
- :mod:`~course_lib.chains.parsers`: ``StrOutputParser``, ``JsonOutputParser`` (with repair)
- :mod:`~course_lib.chains.retrieval`: ``RetrieverRunnable``, ``rag_chain``
- :mod:`~course_lib.chains.memory`: ``RunnableWithHistory`` (windowed history per session)
- :mod:`~course_lib.chains.agent`: ``tool``, ``ToolRunnable`` (chapter 10's ``Tool`` as a Runnable), ``ToolAgent``
  (chapter 10's function-calling loop as a Runnable)
- :mod:`~course_lib.chains.interop`: ``to_langchain``, ``from_langchain`` (the real langchain-core)
"""

from course_lib.chains.agent import Tool, ToolAgent, ToolRunnable, function_tool, tool
from course_lib.chains.base import (
    Graph,
    Runnable,
    RunnableLambda,
    RunnableParallel,
    RunnableSequence,
    coerce,
)
from course_lib.chains.memory import ChatHistoryStore, RunnableWithHistory
from course_lib.chains.models import ChatModelRunnable
from course_lib.chains.parsers import JsonOutputParser, StrOutputParser, parse_json
from course_lib.chains.passthrough import RunnableAssign, RunnablePassthrough
from course_lib.chains.prompts import ChatPromptTemplate, MessagesPlaceholder, PromptTemplate
from course_lib.chains.retrieval import RetrieverRunnable, format_passages, rag_chain

__all__ = ["ChatHistoryStore", "ChatModelRunnable", "ChatPromptTemplate", "Graph", "JsonOutputParser",
           "MessagesPlaceholder", "PromptTemplate", "RetrieverRunnable", "Runnable", "RunnableAssign",
           "RunnableLambda", "RunnableParallel", "RunnablePassthrough", "RunnableSequence", "RunnableWithHistory",
           "StrOutputParser", "Tool", "ToolAgent", "ToolRunnable", "coerce", "format_passages", "from_langchain",
           "function_tool", "parse_json", "rag_chain", "to_langchain", "tool"]


def __getattr__(name):  # the langchain-core bridge loads langchain-core (~1-3 s) only when asked for
    if name in ("to_langchain", "from_langchain"):
        from course_lib.chains import interop
        return getattr(interop, name)
    raise AttributeError(f"module 'course_lib.chains' has no attribute {name!r}")
