"""A retriever as a step, and the RAG chain built from the pieces.

Reference design: LangChain's retrievers (``BaseRetriever.invoke(query) -> list[Document]``) and
its RAG recipe in LCEL (https://python.langchain.com/docs/tutorials/rag/)::

    {"context": retriever | format_passages, "question": RunnablePassthrough()}
    | prompt | model | StrOutputParser()

Any object with ``search(query, k) -> list[Passage]`` is a retriever (the course's one retriever
interface, :mod:`course_lib.rag`: BM25, dense, hybrid); a passage needs ``.text`` and may have
``.title``, ``.id`` and ``.score``.
"""

from __future__ import annotations

from course_lib.chains.base import Runnable
from course_lib.chains.models import ChatModelRunnable
from course_lib.chains.parsers import StrOutputParser
from course_lib.chains.passthrough import RunnablePassthrough
from course_lib.chains.prompts import ChatPromptTemplate

RAG_PROMPT = ChatPromptTemplate([
    ("system", "Answer the question using only the context. If the context does not contain the answer, "
               "say you don't know. Cite passages as [1], [2]."),
    ("human", "Context:\n{context}\n\nQuestion: {question}"),
])


class RetrieverRunnable(Runnable):
    """``RetrieverRunnable(bm25, k=3).invoke("query")`` → the top-``k`` passages, best first."""

    def __init__(self, retriever, k: int = 4):
        if not callable(getattr(retriever, "search", None)):
            raise TypeError(f"retriever must have a search(query, k) method, got {type(retriever).__name__}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        self.retriever, self.k = retriever, k

    @property
    def name(self) -> str:
        return f"Retriever<{type(self.retriever).__name__}>"

    def invoke(self, input, config=None) -> list:
        if not isinstance(input, str) or not input.strip():
            raise ValueError(f"a retriever takes a non-empty query string, got {input!r}")
        return list(self.retriever.search(input, self.k))


def format_passages(passages: list) -> str:
    """Number the passages for the prompt: ``[1] title: text``, one per paragraph."""
    lines = []
    for i, p in enumerate(passages, 1):
        title = getattr(p, "title", "")
        lines.append(f"[{i}] {title}: {p.text}" if title else f"[{i}] {p.text}")
    return "\n\n".join(lines)


def rag_chain(retriever, model, *, k: int = 3, prompt: ChatPromptTemplate = RAG_PROMPT, **options) -> Runnable:
    """question → retrieve ``k`` passages → prompt with context → chat model → answer text."""
    llm = model if isinstance(model, ChatModelRunnable) else ChatModelRunnable(model, **options)
    return ({"context": RetrieverRunnable(retriever, k) | format_passages, "question": RunnablePassthrough()}
            | prompt | llm | StrOutputParser())
