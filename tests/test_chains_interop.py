"""course_lib.chains: interop with the real langchain-core (1.8.1), in both directions."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import JsonOutputParser as LCJsonOutputParser
from langchain_core.output_parsers import StrOutputParser as LCStrOutputParser
from langchain_core.prompts import ChatPromptTemplate as LCChatPromptTemplate
from langchain_core.runnables import Runnable as LCRunnable

from course_lib.chains import (
    ChatModelRunnable,
    ChatPromptTemplate,
    JsonOutputParser,
    RunnablePassthrough,
    RunnableWithHistory,
    StrOutputParser,
    from_langchain,
    to_langchain,
)
from course_lib.chat import ChatReply, ScriptedChatModel, ToolCall
from tests.chains_doubles import INPUT, PROMPT, PiecewiseModel

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
