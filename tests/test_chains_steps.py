"""course_lib.chains: prompts, parsers, the chat model step, retrieval and memory, against langchain-core (1.8.1)."""

from __future__ import annotations

import json

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, convert_to_openai_messages
from langchain_core.output_parsers import JsonOutputParser as LCJsonOutputParser
from langchain_core.prompts import ChatPromptTemplate as LCChatPromptTemplate
from langchain_core.prompts import PromptTemplate as LCPromptTemplate

from course_lib.chains import (
    ChatModelRunnable,
    ChatPromptTemplate,
    JsonOutputParser,
    MessagesPlaceholder,
    PromptTemplate,
    RetrieverRunnable,
    RunnableWithHistory,
    StrOutputParser,
    format_passages,
    parse_json,
    rag_chain,
)
from course_lib.chat import ChatReply, ScriptedChatModel
from tests.chains_doubles import DOCS, INPUT, PROMPT, TinyRetriever

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
