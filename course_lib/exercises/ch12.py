"""Exercises of chapter 12 (LangChain by hand)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from course_lib.chains import (
    ChatModelRunnable,
    RetrieverRunnable,
    Runnable,
    RunnablePassthrough,
    StrOutputParser,
    format_passages,
    rag_chain,
)
from course_lib.chains.retrieval import RAG_PROMPT
from course_lib.chat import ScriptedChatModel
from course_lib.exercises import exercise

TRAILING = [('{"a": 1,}', {"a": 1}),
            ('[1, 2, ]', [1, 2]),
            ('{"xs": [1, 2,\n],\n "b": {"c": 3 ,} ,}', {"xs": [1, 2], "b": {"c": 3}}),
            ('{"s": "keep ,} and ,] in strings", "t": [1,],}', {"s": "keep ,} and ,] in strings", "t": [1]}),
            ('{"q": "say \\", ok\\"", "n": 2,}', {"q": 'say ", ok"', "n": 2})]


def _strip_regex(text):  # wrong: a regex also edits the inside of strings
    return re.sub(r",(\s*[}\]])", r"\1", text)


def _strip_adjacent(text):  # wrong: only ",}" and ",]" with nothing in between
    return text.replace(",}", "}").replace(",]", "]")


@exercise("12.1", answer="strip_trailing_commas", wrong=(_strip_regex, _strip_adjacent), writes_code=True)
def check_strip_trailing_commas(fn) -> str:
    """Check exercise 12.1: the learner's trailing-comma repair against ``json.loads`` of the expected values."""
    for text, want in TRAILING:
        got = fn(text)
        assert isinstance(got, str), f"strip_trailing_commas must return a str, got {type(got).__name__}"
        try:
            value = json.loads(got)
        except json.JSONDecodeError as e:
            raise AssertionError(f"{text!r} → {got!r} is still not JSON ({e})") from None
        assert value == want, f"{text!r} → {value!r}, expected {want!r} (strings must stay untouched)"
    assert fn('{"a": [1, 2]}') == '{"a": [1, 2]}', "valid JSON must come back unchanged"
    return "逗号只在字符串外、后面只剩空白和 } 或 ] 时才删——这就是 JsonOutputParser 修复的一步。"


def _piece_source(events):
    def pieces(text):
        for i, word in enumerate(text.split(" ")):
            events.append(f"source {i}")
            yield word if i == 0 else " " + word

    class Source(Runnable):
        def invoke(self, input, config=None):
            return "".join(pieces(input))

        def stream(self, input, config=None):
            yield from pieces(input)
    return Source()


class _UpperBuffered(Runnable):  # wrong: only invoke, so a stream arrives in one piece at the end
    def invoke(self, input, config=None):
        return input.upper()


class _UpperFirstOnly(Runnable):  # wrong: streams, but only the first piece is upper-cased
    def invoke(self, input, config=None):
        return input.upper()

    def transform(self, chunks, config=None):
        for i, chunk in enumerate(chunks):
            yield chunk.upper() if i == 0 else chunk


@exercise("12.2", answer="Upper", wrong=(_UpperBuffered, _UpperFirstOnly), writes_code=True)
def check_upper(cls) -> str:
    """Check exercise 12.2: the learner's streaming ``Upper`` runnable (LCEL ``transform``) against piece-by-piece output."""
    step = cls()
    assert isinstance(step, Runnable), "Upper must subclass course_lib.chains.Runnable"
    assert step.invoke("stream me") == "STREAM ME", "invoke must return the upper-cased text"
    events: list[str] = []
    chain = _piece_source(events) | step
    got = []
    for piece in chain.stream("tokens flow one by one"):
        events.append(f"out {len(got)}")
        got.append(piece)
    assert "".join(got) == "TOKENS FLOW ONE BY ONE", f"the streamed pieces join to {''.join(got)!r}"
    assert got == ["TOKENS", " FLOW", " ONE", " BY", " ONE"], \
        f"expected one upper-cased piece per input piece, got {got} (implement transform, not only invoke)"
    assert events[:2] == ["source 0", "out 0"], "the first piece must leave before the source writes the second"
    return "transform 逐块处理输入流：链一头在写，另一头已经在读。"


@dataclass(frozen=True)
class _Passage:
    id: str
    doc_id: str
    title: str
    text: str
    score: float


class _Shelf:
    """A three-book retriever for the check: ranks by shared words."""
    BOOKS = [("Paris", "Paris is the capital of France."), ("Tea", "Green tea is brewed at 80 degrees."),
             ("Rome", "Rome is the capital of Italy.")]

    def __init__(self):
        self.queries = []

    def search(self, query, k=10):
        self.queries.append(query)
        words = set(query.lower().replace("?", "").split())
        ranked = sorted(range(len(self.BOOKS)), key=lambda i: -len(words & set(self.BOOKS[i][1].lower()[:-1].split())))
        return [_Passage(f"b{i}#0", f"b{i}", *self.BOOKS[i], 1.0) for i in ranked[:k]]


def _rag_no_context(retriever, model):  # wrong: never retrieves, the model sees no context
    return {"context": lambda q: "", "question": RunnablePassthrough()} | RAG_PROMPT | ChatModelRunnable(model) \
        | StrOutputParser()


def _rag_no_parser(retriever, model):  # wrong: returns the model's ChatReply, not the answer text
    return {"context": RetrieverRunnable(retriever, 1) | format_passages, "question": RunnablePassthrough()} \
        | RAG_PROMPT | ChatModelRunnable(model)


@exercise("12.3", answer="build_rag_chain", wrong=(_rag_no_context, _rag_no_parser), writes_code=True)
def check_rag_chain(fn) -> str:
    """Check exercise 12.3: the learner's LCEL RAG chain against ``rag_chain`` on the same retriever and model."""
    question = "What is the capital of Italy?"
    retriever, model = _Shelf(), ScriptedChatModel(["Rome [1]."])
    chain = fn(retriever, model)
    assert isinstance(chain, Runnable), f"build_rag_chain must return a Runnable (use |), got {type(chain).__name__}"
    out = chain.invoke(question)
    assert out == "Rome [1].", f"the chain must end with the answer text, got {out!r} (a parser at the end?)"
    assert retriever.queries == [question], f"the retriever must get the question itself, got {retriever.queries}"
    want = rag_chain(_Shelf(), reference := ScriptedChatModel(["Rome [1]."]), k=1)
    want.invoke(question)
    seen = model.requests[0]["messages"]
    assert seen == reference.requests[0]["messages"], \
        f"the model saw {seen[-1]['content']!r}, expected {reference.requests[0]['messages'][-1]['content']!r}"
    return "{context, question} 并行 → 提示词 → 模型 → 解析器：RAG 就是四段管道。"

