"""course_lib.chains: LCEL by hand, checked piece by piece and against the real langchain-core (1.8.1)."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from dataclasses import dataclass

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, convert_to_openai_messages
from langchain_core.output_parsers import JsonOutputParser as LCJsonOutputParser
from langchain_core.output_parsers import StrOutputParser as LCStrOutputParser
from langchain_core.prompts import ChatPromptTemplate as LCChatPromptTemplate
from langchain_core.prompts import PromptTemplate as LCPromptTemplate
from langchain_core.runnables import Runnable as LCRunnable
from langchain_core.runnables import RunnableLambda as LCRunnableLambda
from langchain_core.runnables import RunnablePassthrough as LCRunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_tool

from course_lib.chains import (
    ChatModelRunnable,
    ChatPromptTemplate,
    JsonOutputParser,
    MessagesPlaceholder,
    PromptTemplate,
    RetrieverRunnable,
    Runnable,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
    RunnableSequence,
    RunnableWithHistory,
    StrOutputParser,
    ToolAgent,
    format_passages,
    from_langchain,
    parse_json,
    rag_chain,
    to_langchain,
    tool,
)
from course_lib.chains.agent import STOPPED
from course_lib.chat import ChatReply, ScriptedChatModel, ToolCall
from course_lib.viz.chain_graph import chain_figure

PROMPT = [("system", "You are a {style} assistant."), ("human", "Question: {question}")]
INPUT = {"style": "terse", "question": "What is 2 + 2?"}


class PiecewiseModel(ScriptedChatModel):
    """Scripted replies streamed word by word; ``events`` records when each piece leaves the model."""

    def __init__(self, replies, events=None):
        super().__init__(replies)
        self.events = events if events is not None else []

    def stream(self, messages, **kwargs):
        for i, word in enumerate(self.chat(messages, **kwargs).content.split(" ")):
            self.events.append(f"model {i}")
            yield word if i == 0 else " " + word


@dataclass(frozen=True)
class Passage:  # the course retriever interface's passage (course_lib.rag.types.Passage)
    id: str
    doc_id: str
    title: str
    text: str
    score: float


class TinyRetriever:
    """A stand-in retriever: ranks documents by the number of query words they contain."""

    def __init__(self, docs):
        self.docs, self.calls = docs, []

    def search(self, query, k=10):
        self.calls.append((query, k))
        words = set(query.lower().split())
        scored = [(sum(w in text.lower() for w in words), i) for i, (title, text) in enumerate(self.docs)]
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [Passage(f"d{i}#0", f"d{i}", self.docs[i][0], self.docs[i][1], float(s)) for s, i in scored[:k]]


DOCS = [("Paris", "Paris is the capital of France."), ("Rust", "Rust is a systems programming language."),
        ("Berlin", "Berlin is the capital of Germany.")]


# ---- composition -------------------------------------------------------------------------------------


def test_pipe_coerces_callables_and_dicts_and_flattens():
    chain = (lambda x: x + 1) | RunnableLambda(lambda x: x * 2) | {"double": lambda x: x, "neg": lambda x: -x}
    assert isinstance(chain, RunnableSequence) and len(chain.steps) == 3
    assert isinstance(chain.steps[2], RunnableParallel)
    assert chain.invoke(3) == {"double": 8, "neg": -8}
    nested = RunnableSequence(chain, lambda d: d["neg"])
    assert len(nested.steps) == 4 and nested.invoke(0) == -2


def test_parallel_runs_branches_concurrently_and_passthrough_assign_adds_keys():
    barrier = threading.Barrier(2, timeout=5)  # both branches must be running at once to pass
    par = RunnableParallel(a=lambda x: barrier.wait() * 0 + x, b=lambda x: barrier.wait() * 0 + 2 * x)
    assert par.invoke(5) == {"a": 5, "b": 10}
    assign = RunnablePassthrough.assign(total=lambda d: d["a"] + d["b"])
    assert (par | assign).invoke(1) == {"a": 1, "b": 2, "total": 3}
    assert RunnablePassthrough().invoke([1, 2]) == [1, 2]


def test_lambda_gets_config_and_a_returned_runnable_is_invoked():
    seen = {}

    def with_config(x, config):
        seen.update(config)
        return x

    RunnableLambda(with_config).invoke(1, {"configurable": {"session_id": "s"}})
    assert seen == {"configurable": {"session_id": "s"}}
    route = RunnableLambda(lambda x: RunnableLambda(lambda y: y * 10) if x > 0 else RunnableLambda(lambda y: -y))
    assert route.invoke(2) == 20 and route.invoke(-3) == 3


def test_batch_keeps_order_and_respects_max_concurrency():
    running, peak, lock = [0], [0], threading.Lock()

    def slow(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return x * x

    r = RunnableLambda(slow)
    assert r.batch(list(range(8)), max_concurrency=2) == [x * x for x in range(8)]
    assert peak[0] == 2
    failing = RunnableLambda(lambda x: 1 / x)
    out = failing.batch([1, 0], return_exceptions=True)
    assert out[0] == 1 and isinstance(out[1], ZeroDivisionError)
    with pytest.raises(ZeroDivisionError):
        failing.batch([1, 0])


def outcome(call, *args, **kwargs):
    """What ``call(*args, **kwargs)`` gives, comparable across libraries: its value, or ``raises <Type>``
    (lists: element-wise)."""
    try:
        value = call(*args, **kwargs)
    except Exception as e:
        return f"raises {type(e).__name__}"
    return [f"raises {type(v).__name__}" if isinstance(v, Exception) else v for v in value] if isinstance(value, list) else value


async def tenfold(x):
    await asyncio.sleep(0)
    if x == 0:
        raise KeyError("zero")
    return x * 10


class AsyncCallable:
    async def __call__(self, x):
        return await tenfold(x) + 5


def async_cases(lam, passthrough):
    """The same async functions in the same places, built with our classes or with langchain-core's."""
    return {
        "async def": lam(tenfold),
        "partial of async def": lam(functools.partial(tenfold)),
        "object with async __call__": lam(AsyncCallable()),
        "async def piped after a lambda": lam(lambda x: x * 2) | tenfold,
        "async def in a parallel dict": lam(lambda x: x) | {"a": tenfold, "b": lambda x: -x},
        "lambda returning an async Runnable": lam(lambda x: lam(tenfold)),
        "assign with an async step": lam(lambda x: {"x": x}) | passthrough.assign(y=lam(lambda d: d["x"]) | tenfold),
    }


@pytest.mark.parametrize("case", list(async_cases(RunnableLambda, RunnablePassthrough)))
def test_async_def_lambda_is_awaited_or_refused_as_in_langchain(case):
    ours = async_cases(RunnableLambda, RunnablePassthrough)[case]
    theirs = async_cases(LCRunnableLambda, LCRunnablePassthrough)[case]

    async def astream(r, x):
        return [piece async for piece in r.astream(x)]
    calls = {
        "invoke": lambda r: r.invoke(2),
        "ainvoke": lambda r: asyncio.run(r.ainvoke(2)),
        "ainvoke raising": lambda r: asyncio.run(r.ainvoke(0)),
        "abatch": lambda r: asyncio.run(r.abatch([1, 2, 3])),
        "abatch return_exceptions": lambda r: asyncio.run(r.abatch([1, 0, 3], return_exceptions=True)),
        "batch": lambda r: r.batch([1, 2]),
        "batch return_exceptions": lambda r: r.batch([1, 2], return_exceptions=True),
        "stream": lambda r: list(r.stream(2)),
    }
    if case in ("async def", "object with async __call__"):
        calls["astream"] = lambda r: asyncio.run(astream(r, 2))
    got = {name: outcome(call, ours) for name, call in calls.items()}
    assert got == {name: outcome(call, theirs) for name, call in calls.items()}
    assert got["invoke"] == "raises TypeError" and not isinstance(got["ainvoke"], str)   # refused, then awaited
    assert got["ainvoke raising"] == "raises KeyError" and "raises KeyError" in got["abatch return_exceptions"]
    with pytest.raises(TypeError, match="Cannot invoke a coroutine function synchronously"):
        ours.invoke(2)


def test_abatch_checks_arguments_like_batch_and_returns_exceptions_like_langchain():
    ours, theirs = RunnableLambda(lambda x: 1 / x), LCRunnableLambda(lambda x: 1 / x)
    for r in (ours, theirs):   # the same outcomes from both libraries, sync and async
        assert outcome(r.batch, [1, 0, 4], return_exceptions=True) == [1.0, "raises ZeroDivisionError", 0.25]
        assert outcome(asyncio.run, r.abatch([1, 0, 4], return_exceptions=True)) == [1.0, "raises ZeroDivisionError", 0.25]
        assert outcome(asyncio.run, r.abatch([1, 0, 4])) == "raises ZeroDivisionError"
        assert asyncio.run(r.abatch([])) == []
    for bad in (0, -1, True, 1.5):   # langchain-core's abatch waits forever on max_concurrency=0; ours refuses
        with pytest.raises(ValueError, match="max_concurrency must be a positive int"):
            ours.batch([1], max_concurrency=bad)
        with pytest.raises(ValueError, match="max_concurrency must be a positive int"):
            asyncio.run(ours.abatch([1], max_concurrency=bad))
    with pytest.raises(TypeError, match="list of inputs"):
        asyncio.run(ours.abatch("abc"))
    running, peak = [0], [0]

    async def slow(x):
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.01)
        running[0] -= 1
        return x

    assert asyncio.run(RunnableLambda(slow).abatch(list(range(6)), max_concurrency=2)) == list(range(6))
    assert peak[0] == 2
    with pytest.raises(TypeError, match="not an async generator"):
        RunnableLambda(AsyncGenerator.pieces)


class AsyncGenerator:
    @staticmethod
    async def pieces(x):
        yield x


def test_stream_passes_through_model_and_parser_piece_by_piece():
    events: list[str] = []
    chain = ChatPromptTemplate(PROMPT) | ChatModelRunnable(PiecewiseModel(["four is the answer"], events)) | StrOutputParser()
    pieces = []
    for piece in chain.stream(INPUT):
        events.append(f"got {len(pieces)}")
        pieces.append(piece)
    assert pieces == ["four", " is", " the", " answer"]
    # each piece reaches the caller before the model writes the next one: real streaming, not buffered
    assert events == [e for i in range(4) for e in (f"model {i}", f"got {i}")]


def test_async_forms_equal_the_sync_ones():
    chain = ChatPromptTemplate(PROMPT) | ChatModelRunnable(PiecewiseModel(["four"] * 10)) | StrOutputParser()

    async def run():
        one = await chain.ainvoke(INPUT)
        many = await chain.abatch([INPUT] * 3, max_concurrency=2)
        pieces = [p async for p in chain.astream(INPUT)]
        return one, many, pieces
    assert asyncio.run(run()) == ("four", ["four"] * 3, ["four"])


def test_bad_composition_and_batch_arguments_raise_clear_errors():
    with pytest.raises(TypeError, match="cannot compose 'int'"):
        RunnablePassthrough() | 3
    with pytest.raises(ValueError, match="at least 2 steps"):
        RunnableSequence(RunnablePassthrough())
    with pytest.raises(ValueError, match="at least one branch"):
        RunnableParallel({})
    with pytest.raises(TypeError, match="plain callable"):
        RunnableLambda(3)
    with pytest.raises(ValueError, match="max_concurrency must be a positive int"):
        RunnablePassthrough().batch([1], max_concurrency=0)
    with pytest.raises(TypeError, match="list of inputs"):
        RunnablePassthrough().batch("abc")
    with pytest.raises(TypeError, match="config must be a dict"):
        RunnableLambda(lambda x: x).invoke(1, config="s1")
    with pytest.raises(TypeError, match="needs a dict input"):
        RunnablePassthrough.assign(a=lambda d: 1).invoke(3)
    with pytest.raises(NotImplementedError, match="must implement invoke"):
        Runnable().invoke(1)


# ---- prompts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template, values", [
    ("Answer: {question}", {"question": "why?"}),
    ("{a} and {b} and {a} again", {"a": 1, "b": 2.5}),
    ("JSON like {{\"k\": {v}}} stays", {"v": "x"}),
    ("中文 {名字} works too", {"名字": "不"}),
    ("no variables at all", {}),
])
def test_prompt_template_renders_what_langchain_renders(template, values):
    if any(not k.isascii() for k in values):
        with pytest.raises(ValueError, match="not a variable name"):
            PromptTemplate(template)
        return
    ours = PromptTemplate(template)
    theirs = LCPromptTemplate.from_template(template)
    assert sorted(ours.input_variables) == sorted(theirs.input_variables)
    assert ours.invoke(values) == theirs.invoke(values).to_string()


def test_chat_prompt_renders_what_langchain_renders():
    pairs = PROMPT + [("ai", "Let me think about {question}."), ("placeholder", "{history}"), ("user", "{{literal}}")]
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    ours = ChatPromptTemplate(pairs)
    theirs = LCChatPromptTemplate.from_messages(pairs)
    for values in (INPUT, {**INPUT, "history": history}):
        assert ours.invoke(values) == convert_to_openai_messages(theirs.invoke(values).to_messages())
    assert sorted(ours.input_variables) == sorted(theirs.input_variables)


def test_prompt_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"missing variables \['question'\]"):
        ChatPromptTemplate(PROMPT).invoke({"style": "x"})
    with pytest.raises(TypeError, match="expects a dict with keys"):
        ChatPromptTemplate(PROMPT).invoke("just a string")
    assert PromptTemplate("Q: {q}").invoke("bare value") == "Q: bare value"  # one variable: bare input is fine
    with pytest.raises(ValueError, match="unmatched '{'"):
        PromptTemplate("a { b")
    with pytest.raises(ValueError, match="unknown role 'robot'"):
        ChatPromptTemplate([("robot", "hi")])
    with pytest.raises(TypeError, match=r"messages\[0\] must be a \(role, template\) pair"):
        ChatPromptTemplate(["hi"])
    with pytest.raises(TypeError, match="placeholder 'h' needs a list"):
        ChatPromptTemplate([MessagesPlaceholder("h"), ("human", "x")]).invoke({"h": "not a list"})
    with pytest.raises(ValueError, match="missing variables"):
        ChatPromptTemplate([MessagesPlaceholder("h"), ("human", "x")]).invoke({})


# ---- parsers ---------------------------------------------------------------------------------------------

LC_PARSEABLE = [
    '{"a": 1, "b": [1, 2, {"c": "d"}]}',
    '  \n{"a": "x"}\n ',
    '```json\n{"name": "search", "args": {"q": "rust"}}\n```',
    '```\n[1, 2, 3]\n```',
    'Here you go:\n```json\n{"ok": true, "n": null}\n```\nDone.',
    '{"text": "line one\nline two"}',
    '{"a": 1, "b": [1, 2',
    '{"a": "unfinished str',
    '{"quote": "she said \\"hi\\"", "brace": "}{"}',
]


@pytest.mark.parametrize("text", LC_PARSEABLE)
def test_json_parser_parses_what_langchain_parses(text):
    theirs = LCJsonOutputParser().invoke(text)
    assert JsonOutputParser().invoke(text) == theirs


@pytest.mark.parametrize("text, expected", [
    ('{"a": 1, "b": [1, 2,],}', {"a": 1, "b": [1, 2]}),                        # trailing commas
    ('{"s": "keep ,} in strings", "t": [1 ,\n],}', {"s": "keep ,} in strings", "t": [1]}),  # ... not in strings
    ("{'tool': 'search', 'args': {'q': \"it's\"}}", {"tool": "search", "args": {"q": "it's"}}),  # single quotes
    ('Sure! The answer is {"x": 2} as requested.', {"x": 2}),                   # prose around the object
    ('{"ok": True, "v": None, "f": False}', {"ok": True, "v": None, "f": False}),  # Python literals
    ('noise {"nested": {"s": "a } brace"}} {"second": 1}', {"nested": {"s": "a } brace"}}),  # first balanced
])
def test_json_parser_repairs_small_model_output(text, expected):
    assert parse_json(text) == expected
    with pytest.raises(OutputParserException):  # langchain-core's parser does not repair these: the repair is ours
        LCJsonOutputParser().invoke(text)


def test_parsers_errors_and_message_inputs():
    with pytest.raises(ValueError, match="no JSON object or array"):
        parse_json("I cannot answer that.")
    with pytest.raises(ValueError, match="irreparable"):
        parse_json('{"a": 1]')
    with pytest.raises(TypeError, match="parse_json takes a str"):
        parse_json(3)
    with pytest.raises(TypeError, match="string .content"):
        StrOutputParser().invoke(42)
    assert StrOutputParser().invoke(ChatReply("hi")) == "hi"
    assert StrOutputParser().invoke(AIMessage(content="hey")) == "hey"
    assert JsonOutputParser().invoke(ChatReply('{"a": 1}')) == {"a": 1}
    assert list(JsonOutputParser().transform(iter(['{"a":', ' 1}']))) == [{"a": 1}]


# ---- chat model, retriever, memory, agent ----------------------------------------------------------------


def test_chat_model_runnable_passes_messages_and_options():
    model = ScriptedChatModel(["ok", "ok"])
    llm = ChatModelRunnable(model, max_tokens=5).bind(stop=["\n"])
    assert llm.options == {"max_tokens": 5, "stop": ["\n"]}
    reply = llm.invoke("hello")
    assert isinstance(reply, ChatReply) and reply.content == "ok"
    assert model.requests[0]["messages"] == [{"role": "user", "content": "hello"}]
    (ChatPromptTemplate(PROMPT) | llm).invoke(INPUT)
    assert model.requests[1]["messages"][0] == {"role": "system", "content": "You are a terse assistant."}
    with pytest.raises(TypeError, match="must be a course_lib.chat.ChatModel"):
        ChatModelRunnable(object())
    with pytest.raises(ValueError, match=r"unknown chat options \['temp'\]"):
        ChatModelRunnable(model, temp=0.5)
    with pytest.raises(TypeError, match="put a ChatPromptTemplate before it"):
        llm.invoke({"question": "x"})


def test_chat_model_runnable_over_an_openai_compatible_endpoint():
    import httpx
    from openai import OpenAI

    from course_lib.chat import OpenAIChatModel
    seen = []

    def endpoint(request):
        body = json.loads(request.content)
        seen.append(body)
        return httpx.Response(200, json={
            "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Four."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})
    client = OpenAI(base_url="http://fake.test/v1", api_key="k",
                    http_client=httpx.Client(transport=httpx.MockTransport(endpoint)))
    chain = ChatPromptTemplate(PROMPT) | ChatModelRunnable(OpenAIChatModel("m", client=client), max_tokens=7) \
        | StrOutputParser()
    assert chain.invoke(INPUT) == "Four."
    assert seen[0] == {"model": "m", "messages": ChatPromptTemplate(PROMPT).invoke(INPUT), "max_tokens": 7,
                       "temperature": 0.0}


def test_retriever_runnable_and_rag_chain_put_the_passages_in_the_prompt():
    retriever = TinyRetriever(DOCS)
    assert [p.title for p in RetrieverRunnable(retriever, k=2).invoke("capital of France")] == ["Paris", "Berlin"]
    model = ScriptedChatModel(["Paris [1]."])
    chain = rag_chain(retriever, model, k=1)
    assert chain.invoke("What is the capital of France?") == "Paris [1]."
    assert retriever.calls[-1] == ("What is the capital of France?", 1)
    user = model.requests[0]["messages"][-1]["content"]
    assert user == "Context:\n[1] Paris: Paris is the capital of France.\n\nQuestion: What is the capital of France?"
    assert format_passages([]) == ""
    with pytest.raises(TypeError, match="search"):
        RetrieverRunnable(object())
    with pytest.raises(ValueError, match="k must be a positive int"):
        RetrieverRunnable(retriever, k=0)
    with pytest.raises(ValueError, match="non-empty query string"):
        RetrieverRunnable(retriever).invoke("  ")


def test_rag_chain_over_the_course_bm25_retriever():
    from course_lib.rag import BM25Retriever, Chunk
    chunks = [Chunk(f"d{i}#0", f"d{i}", title, text, 0) for i, (title, text) in enumerate(DOCS)]
    model = ScriptedChatModel(["Berlin [1]."])
    assert rag_chain(BM25Retriever(chunks), model, k=1).invoke("capital of Germany?") == "Berlin [1]."
    assert "[1] Berlin: Berlin is the capital of Germany." in model.requests[0]["messages"][-1]["content"]


def test_memory_keeps_a_window_per_session():
    model = ScriptedChatModel([f"reply {i}" for i in range(6)])
    prompt = ChatPromptTemplate([("system", "Be brief."), ("placeholder", "{history}"), ("human", "{question}")])
    chat = RunnableWithHistory(prompt | ChatModelRunnable(model) | StrOutputParser(), window=1)
    a, b = {"configurable": {"session_id": "a"}}, {"configurable": {"session_id": "b"}}
    assert chat.invoke("first", a) == "reply 0"
    chat.invoke("other", b)
    chat.invoke("second", a)
    # session a's second call saw its own first turn, not session b's
    assert model.requests[2]["messages"][1:] == [{"role": "user", "content": "first"},
                                                 {"role": "assistant", "content": "reply 0"},
                                                 {"role": "user", "content": "second"}]
    assert "".join(chat.stream({"question": "third"}, a)) == "reply 3"
    # window=1: only the last turn comes back
    assert [m["content"] for m in model.requests[3]["messages"][1:]] == ["second", "reply 2", "third"]
    assert len(chat.store.messages("a")) == 6 and chat.store.sessions() == ["a", "b"]
    with pytest.raises(ValueError, match="session_id"):
        chat.invoke("x")
    with pytest.raises(ValueError, match="window must be a non-negative int"):
        RunnableWithHistory(prompt, window=-1)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def search(query: str, k: int = 3, exact: bool = False, boost: float = 1.0) -> str:
    """Search the docs.

    A second paragraph joins the description.

    Args:
        query: what to look for,
            in plain words.
        k: how many passages.

    Returns:
        the passages."""
    return query


def test_tool_spec_equals_langchain_and_arguments_are_checked():
    assert add.spec() == {"type": "function", "function": {
        "name": "add", "description": "Add two integers.",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                       "required": ["a", "b"]}}}
    assert tool(search).spec() == convert_to_openai_tool(search)
    assert add.invoke({"a": 2, "b": 3}) == 5
    with pytest.raises(ValueError, match=r"missing arguments \['b'\], unknown arguments \['c'\]"):
        add.invoke({"a": 1, "c": 2})
    with pytest.raises(TypeError, match="dict of arguments"):
        add.invoke(3)


def test_agent_chain_calls_tools_until_a_plain_answer():
    model = ScriptedChatModel(['{"tool": "add", "args": {"a": 2, "b": 3}}',
                               ChatReply("", (ToolCall("nope", {}),), "tool_calls"), "2 + 3 = 5"])
    agent = ToolAgent(model, [add])
    out = agent.invoke("What is 2 + 3?")
    assert out["output"] == "2 + 3 = 5"
    assert out["intermediate_steps"][0] == ("add", {"a": 2, "b": 3}, "5")
    assert out["intermediate_steps"][1][2].startswith("Error: unknown tool 'nope'")
    assert model.requests[0]["tools"] == [add.spec()]
    second = model.requests[1]["messages"]
    assert second[-1]["role"] == "tool" and second[-1]["content"] == "5"
    assert second[-2]["tool_calls"][0]["function"]["name"] == "add"
    looping = ToolAgent(ScriptedChatModel(['{"tool": "add", "args": {"a": 1, "b": 1}}'] * 2), [add], max_steps=2)
    assert looping.invoke({"input": "loop"})["output"] == STOPPED
    with pytest.raises(ValueError, match="question string"):
        agent.invoke("")
    with pytest.raises(ValueError, match="at least one tool"):
        ToolAgent(model, [])


# ---- graph ---------------------------------------------------------------------------------------------


def test_graph_of_a_chain_matches_langchain_shape_and_draws():
    llm = ChatModelRunnable(ScriptedChatModel([]))
    ours = (ChatPromptTemplate(PROMPT) | llm | StrOutputParser()).graph()
    theirs = (LCChatPromptTemplate.from_messages(PROMPT) | to_langchain(llm) | LCStrOutputParser()).get_graph()
    assert ours.nodes[1:-1] == [n.name for n in theirs.nodes.values()][1:-1]
    assert len(ours.nodes) == len(theirs.nodes) and len(ours.edges) == len(theirs.edges)
    assert ours.edges == [(0, 1), (1, 2), (2, 3), (3, 4)]
    par = ({"a": lambda x: x, "b": RunnablePassthrough()} | RunnableLambda(len)).graph()
    fan_out = [b for a, b in par.edges if par.nodes[a] == "RunnableParallel<a,b>Input"]
    assert len(fan_out) == 2
    agent = ToolAgent(ScriptedChatModel([]), [add]).graph()
    assert (agent.nodes.index("tools<add>"), agent.nodes.index("ChatModel<scripted>")) in agent.edges  # the loop
    fig = chain_figure(agent)
    assert len(fig.layout.annotations) == len(agent.edges) + len(agent.nodes)  # one arrow per edge, one box per node
    assert list(fig.data[0].text) == agent.nodes
    assert sum(a.arrowcolor == "#d62728" for a in fig.layout.annotations) == 1  # the loop edge


# ---- interop with langchain-core ---------------------------------------------------------------------------


def test_same_chain_ours_theirs_and_mixed_give_the_same_output():
    replies = ['```json\n{"answer": 4}\n```'] * 20
    ours = ChatPromptTemplate(PROMPT) | ChatModelRunnable(PiecewiseModel(replies)) | JsonOutputParser()
    theirs = LCChatPromptTemplate.from_messages(PROMPT) | to_langchain(ChatModelRunnable(PiecewiseModel(replies))) \
        | LCJsonOutputParser()
    wrapped_ours, wrapped_theirs = to_langchain(ours), from_langchain(theirs)
    assert isinstance(wrapped_ours, LCRunnable)
    for chain in (ours, theirs, wrapped_ours, wrapped_theirs):
        assert chain.invoke(INPUT) == {"answer": 4}
        assert chain.batch([INPUT, INPUT]) == [{"answer": 4}] * 2
        assert list(chain.stream(INPUT))[-1] == {"answer": 4}


def test_langchain_fake_model_streams_inside_our_chain():
    text = "Paris is the capital"
    theirs = LCChatPromptTemplate.from_messages(PROMPT) | FakeListChatModel(responses=[text]) | LCStrOutputParser()
    ours = ChatPromptTemplate(PROMPT) | from_langchain(FakeListChatModel(responses=[text])) | StrOutputParser()
    assert ours.invoke(INPUT) == theirs.invoke(INPUT) == text
    assert list(ours.stream(INPUT)) == list(theirs.stream(INPUT)) == list(text)  # their fake streams characters
    assert ours.batch([INPUT] * 2) == theirs.batch([INPUT] * 2)
    assert asyncio.run(from_langchain(theirs).ainvoke(INPUT)) == text


def test_our_model_reply_crosses_as_an_aimessage_and_config_crosses_too():
    model = ScriptedChatModel([ChatReply("", (ToolCall("add", {"a": 1, "b": 2}, "call_1"),), "tool_calls")])
    msg = to_langchain(ChatModelRunnable(model)).invoke("add 1 and 2")
    assert isinstance(msg, AIMessage) and msg.tool_calls[0]["name"] == "add" and msg.tool_calls[0]["args"] == {
        "a": 1, "b": 2}
    prompt = ChatPromptTemplate([("placeholder", "{history}"), ("human", "{question}")])
    chat = RunnableWithHistory(prompt | ChatModelRunnable(ScriptedChatModel(["one", "two"])) | StrOutputParser())
    lc_chat = to_langchain(chat)
    lc_chat.invoke({"question": "q1"}, {"configurable": {"session_id": "s"}})
    lc_chat.invoke({"question": "q2"}, {"configurable": {"session_id": "s"}})
    assert [m["content"] for m in chat.store.messages("s")] == ["q1", "one", "q2", "two"]
    with pytest.raises(TypeError, match="takes a course_lib.chains Runnable"):
        to_langchain(lambda x: x)
    with pytest.raises(TypeError, match="takes a langchain_core Runnable"):
        from_langchain(RunnablePassthrough())


def test_smollm2_greedy_chain_is_the_same_through_langchain(smollm2):
    from course_lib.chat import LocalChatModel
    from course_lib.pretrained import smollm2_tokenizer
    llm = ChatModelRunnable(LocalChatModel(smollm2, smollm2_tokenizer()), max_tokens=6)
    prompt = [("system", "Answer in one word."), ("human", "{question}")]
    ours = ChatPromptTemplate(prompt) | llm | StrOutputParser()
    theirs = LCChatPromptTemplate.from_messages(prompt) | to_langchain(llm) | LCStrOutputParser()
    question = {"question": "What colour is the sky?"}
    answer = ours.invoke(question)
    pieces = list(theirs.stream(question))  # two SmolLM2 calls only: invoke and batch are covered above
    assert answer and len(pieces) > 1 and "".join(pieces) == answer
