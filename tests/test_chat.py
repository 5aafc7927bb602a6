"""course_lib.chat: the local backend equals the shared decoder, the OpenAI backend speaks the real client's wire format."""

import json

import httpx
import pytest
import torch
from openai import OpenAI

from course_lib import generation
from course_lib.chat import (
    ChatModel,
    ChatReply,
    LocalChatModel,
    OpenAIChatModel,
    ScriptedChatModel,
    ToolCall,
    check_messages,
    parse_tool_call,
)
from course_lib.pretrained import smollm2, smollm2_chat_prompt, smollm2_tokenizer

WEATHER = {"type": "function", "function": {"name": "weather", "description": "Weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
HELLO = [{"role": "user", "content": "Name one colour."}]


@pytest.fixture(scope="module")
def local():
    return LocalChatModel(smollm2(), smollm2_tokenizer())


def test_local_greedy_reply_equals_the_shared_decoder(local):
    tok = local.tokenizer
    ids = torch.tensor([tok.encode(smollm2_chat_prompt(HELLO))])
    end = tok.token_to_id("<|im_end|>")
    out = generation.generate(local.model, ids, 12, stop_tokens=[end, tok.token_to_id("<|endoftext|>")])[0, ids.shape[1]:]
    expected = tok.decode([t for t in out.tolist() if t != end], skip_special_tokens=True)
    reply = local.chat(HELLO, max_tokens=12)
    assert reply.content == expected and expected.strip()
    assert reply.usage["prompt_tokens"] == ids.shape[1]
    assert reply.usage["completion_tokens"] == len(out)
    assert reply.finish_reason == ("stop" if end in out.tolist() else "length")
    assert "".join(local.stream(HELLO, max_tokens=12)) == expected


def test_local_stop_string_cuts_the_reply(local):
    full = local.chat(HELLO, max_tokens=12).content
    stop = full.strip()[1:3]
    reply = local.chat(HELLO, max_tokens=12, stop=[stop])
    assert reply.content == full[:full.find(stop)] and reply.finish_reason == "stop"
    assert "".join(local.stream(HELLO, max_tokens=12, stop=[stop])) == reply.content


def test_local_seed_makes_sampling_repeatable(local):
    a = local.chat(HELLO, max_tokens=8, temperature=1.0, seed=3).content
    assert a == local.chat(HELLO, max_tokens=8, temperature=1.0, seed=3).content


def test_local_prompt_lists_tools_and_renders_tool_turns(local):
    call = ToolCall("weather", {"city": "Oslo"}, id="call_1")
    messages = [{"role": "user", "content": "Weather in Oslo?"}, ChatReply("", (call,)).message(),
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    text = local.tokenizer.decode(local.prompt_ids(messages, [WEATHER]))
    assert "weather(city): Weather in a city" in text
    assert '{"tool": "weather", "args": {"city": "Oslo"}}' in text and "Tool result: sunny" in text


def test_parse_tool_call_accepts_only_known_tools_in_the_course_format():
    assert parse_tool_call('{"tool": "weather", "args": {"city": "Oslo"}}', [WEATHER]).arguments == {"city": "Oslo"}
    for bad in ('{"tool": "nope", "args": {}}', '{"tool": "weather"}', "weather(Oslo)", "[1, 2]"):
        assert parse_tool_call(bad, [WEATHER]) is None


def _fake_endpoint(seen: list):
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.url.path, body))
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]}
        return httpx.Response(200, json={
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})
    return handler


def test_openai_backend_sends_openai_requests_and_reads_tool_calls():
    seen: list = []
    client = OpenAI(base_url="http://fake.test/v1", api_key="k",
                    http_client=httpx.Client(transport=httpx.MockTransport(_fake_endpoint(seen))))
    model = OpenAIChatModel("some-model", client=client)
    reply = model.chat(HELLO, tools=[WEATHER], max_tokens=9, stop=["\n"], seed=1)
    path, body = seen[0]
    assert path == "/v1/chat/completions"
    assert body == {"model": "some-model", "messages": HELLO, "max_tokens": 9, "temperature": 0.0,
                    "tools": [WEATHER], "stop": ["\n"], "seed": 1}
    assert reply.tool_calls == (ToolCall("weather", {"city": "Oslo"}, "call_9"),)
    assert reply.finish_reason == "tool_calls" and reply.usage["total_tokens"] == 12


def test_openai_backend_reads_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("COURSE_CHAT_MODEL", "big-model")
    model = OpenAIChatModel()
    assert model.name == "big-model" and str(model.client.base_url) == "http://127.0.0.1:9/v1/"


def test_scripted_model_replays_and_records():
    model = ScriptedChatModel(["hello", '{"tool": "weather", "args": {"city": "Rome"}}'])
    assert isinstance(model, ChatModel) and isinstance(LocalChatModel(), ChatModel)
    assert model.chat(HELLO).content == "hello"
    reply = model.chat(HELLO, tools=[WEATHER])
    assert reply.tool_calls[0].arguments == {"city": "Rome"} and reply.finish_reason == "tool_calls"
    assert model.requests[1]["tools"] == [WEATHER]
    with pytest.raises(RuntimeError, match="ran out of replies after 2"):
        model.chat(HELLO)


def test_bad_messages_and_options_are_refused():
    with pytest.raises(ValueError, match="non-empty list"):
        check_messages([])
    with pytest.raises(ValueError, match="role in"):
        check_messages([{"role": "robot", "content": "x"}])
    with pytest.raises(TypeError, match="must be a string"):
        check_messages([{"role": "user", "content": 3}])
    with pytest.raises(ValueError, match="max_tokens"):
        ScriptedChatModel(["x"]).chat(HELLO, max_tokens=0)
    with pytest.raises(ValueError, match="stop must be"):
        ScriptedChatModel(["x"]).chat(HELLO, stop=[""])
