"""Function-calling and AutoGPT agent loops driven by scripted model replies: OpenAI message types, caps,
budgets, memory."""

import json

import httpx
import numpy as np
import pytest
from openai import OpenAI

from course_lib.agent.autogpt import AutoGPTAgent
from course_lib.agent.dispatch import as_registry, describe_tools
from course_lib.agent.function_calling import FunctionCallingAgent, failed_call_reason
from course_lib.agent.memory import AgentMemory
from course_lib.agent.tools import Tool
from course_lib.chat import ChatReply, OpenAIChatModel, ScriptedChatModel, ToolCall
from tests.agent_loop_doubles import ADD, MESSAGES, TOOLS, _obj

# ---------------------------------------------------------------- function calling

def call(name, args, i):
    return ToolCall(name, args, f"call_{i}")


def test_function_calling_messages_follow_the_openai_types():
    model = ScriptedChatModel([
        ChatReply("", (call("add", {"a": 2, "b": 3}, 1), call("upper", {"text": "hi"}, 2)), "tool_calls",
                  {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}),
        ChatReply("", (call("add", {"a": "x"}, 3), call("nope", {}, 4)), "tool_calls"),
        ChatReply("The sum is 5 and HI.", (), "stop", {"prompt_tokens": 90, "completion_tokens": 8, "total_tokens": 98}),
    ])
    trace = FunctionCallingAgent(model, TOOLS, system="Use tools.").run("2+3 and shout hi")
    assert trace.answer == "The sum is 5 and HI." and trace.stop_reason == "final_answer"
    MESSAGES.validate_python(trace.messages)                      # the openai package's own message types
    roles = [m["role"] for m in trace.messages]
    assert roles == ["system", "user", "assistant", "tool", "tool", "assistant", "tool", "tool", "assistant"]
    tool_msgs = [m for m in trace.messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_msgs] == ["call_1", "call_2", "call_3", "call_4"]
    assert [m["content"] for m in tool_msgs[:2]] == ["5", "HI"]
    assert tool_msgs[2]["content"].startswith("Error: add: arguments fail the schema at ")
    assert tool_msgs[3]["content"].startswith("Error: unknown tool 'nope'")
    assert json.loads(trace.messages[2]["tool_calls"][0]["function"]["arguments"]) == {"a": 2, "b": 3}
    assert model.requests[0]["tools"] == TOOLS.to_openai()
    assert [s.tokens for s in trace.steps] == [70, 0, 0, 0, 98]    # a model call's tokens counted once


def test_function_calling_answers_a_broken_text_call_with_an_error():
    model = ScriptedChatModel(['{"tool": "add", "args": {"a": 1, "b": 2}',   # missing brace
                               '{"tool": "add", "args": {"a": 1, "b": 2}}',  # parsed by the test double
                               "3"])
    trace = FunctionCallingAgent(model, TOOLS).run("1+2")
    assert [s.kind for s in trace.steps] == ["error", "tool", "final"] and trace.answer == "3"
    assert trace.steps[0].observation.startswith("Error: your tool call is not valid JSON")
    MESSAGES.validate_python(trace.messages)
    assert failed_call_reason("Paris is the capital.", ["add"]) is None
    assert failed_call_reason('{"tool": "mul", "args": {}}', ["add"]) == "unknown tool 'mul'; available tools: add"


def test_function_calling_caps_and_budget():
    loop = [ChatReply("", (call("add", {"a": 1, "b": 1}, i),), "tool_calls", {"total_tokens": 40}) for i in range(9)]
    assert FunctionCallingAgent(ScriptedChatModel(loop), TOOLS, max_steps=2).run("go").stop_reason == "max_steps"
    model = ScriptedChatModel(loop)
    assert FunctionCallingAgent(model, TOOLS, token_budget=100).run("go").stop_reason == "budget"
    assert len(model.requests) == 3


def test_function_calling_through_the_real_openai_client():
    answers = iter([
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_7", "type": "function", "function": {"name": "add", "arguments": '{"a": 4, "b": 5}'}}]},
        {"role": "assistant", "content": "9"}])
    bodies = []

    def endpoint(request):
        bodies.append(json.loads(request.content))
        msg = next(answers)
        return httpx.Response(200, json={
            "id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if msg.get("tool_calls") else "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})

    client = OpenAI(base_url="http://test/v1", api_key="k", http_client=httpx.Client(transport=httpx.MockTransport(endpoint)))
    trace = FunctionCallingAgent(OpenAIChatModel("m", client=client), TOOLS).run("4+5?")
    assert trace.answer == "9" and trace.tokens == 16
    assert bodies[1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_7", "content": "9"}
    assert bodies[1]["messages"][-2]["tool_calls"][0]["id"] == "call_7"
    MESSAGES.validate_python(bodies[1]["messages"])


# ---------------------------------------------------------------- memory and AutoGPT

VOCAB = ["paris", "france", "capital", "add", "sum", "weather", "rain", "python", "code", "step"]


def bag_of_words(texts):
    """A tiny deterministic embedding: word counts over VOCAB, plus 1 so no vector is zero."""
    return np.array([[1.0 + t.lower().count(w) * 5 for w in VOCAB] for t in texts], dtype=np.float32)


def test_memory_returns_the_most_relevant_texts_first():
    memory = AgentMemory(bag_of_words)
    for text in ["rain weather in Oslo", "Paris is the capital of France", "python code ran fine"]:
        memory.add(text)
    best = memory.relevant("capital of france?", k=2)
    assert best[0][0] == "Paris is the capital of France" and best[0][1] > best[1][1]
    assert len(memory) == 3 and memory.collection.metric == "cosine"
    assert AgentMemory(bag_of_words).relevant("anything") == []
    with pytest.raises(ValueError, match="text must be a non-empty string"):
        memory.add("")
    with pytest.raises(TypeError, match="embed must be a callable"):
        AgentMemory("minilm")


def autogpt_reply(name, args, text="t"):
    return json.dumps({"thoughts": {"text": text, "reasoning": "r", "plan": "- go", "criticism": "c"},
                       "command": {"name": name, "args": args}})


def test_autogpt_acts_remembers_repairs_and_finishes():
    model = ScriptedChatModel([
        autogpt_reply("add", {"a": 2, "b": 3}),
        "```json\n{'thoughts': {'text': 'shout'}, 'command': {'name': 'upper', 'args': {'text': 'paris capital'}},}\n```",
        "I will now finish the task.",                                      # not JSON at all
        '{"thoughts": {}, "command": {"name": "finish", "args": {"answer": "5, PARIS CAPITAL"}}',  # cut short
    ])
    memory = AgentMemory(bag_of_words)
    trace = AutoGPTAgent(model, TOOLS, memory, max_steps=6).run("Find the sum and the capital of France")
    assert trace.stop_reason == "final_answer" and trace.answer == "5, PARIS CAPITAL"
    assert [s.kind for s in trace.steps] == ["tool", "tool", "error", "final"]
    assert trace.steps[1].observation == "PARIS CAPITAL (note: your JSON needed repair)"
    assert trace.steps[2].observation.startswith("Error: your reply was not valid JSON")
    assert trace.steps[2].thought == "I will now finish the task."
    assert len(memory) == 3                                          # the final step is not stored
    last_prompt = model.requests[3]["messages"][1]["content"]
    assert last_prompt.startswith("Relevant memories:\n- step 2: upper")  # capital/paris: most relevant to the goal
    assert "Last result: Error: your reply was not valid JSON" in last_prompt
    assert last_prompt.endswith("respond using the format specified above:")


def test_autogpt_stops_on_repeats_caps_and_budget():
    same = [ChatReply(autogpt_reply("add", {"a": 1, "b": 1}), usage={"total_tokens": 60})] * 9
    trace = AutoGPTAgent(ScriptedChatModel(same), TOOLS, AgentMemory(bag_of_words), max_repeats=3).run("add forever")
    assert trace.stop_reason == "repeat" and [s.kind for s in trace.steps] == ["tool"] * 3 + ["stop"]
    varied = [autogpt_reply("add", {"a": i, "b": 1}) for i in range(9)]
    trace = AutoGPTAgent(ScriptedChatModel(varied), TOOLS, AgentMemory(bag_of_words), max_steps=4).run("count")
    assert trace.stop_reason == "max_steps" and len(trace.steps) == 4
    model = ScriptedChatModel(same)
    trace = AutoGPTAgent(model, TOOLS, AgentMemory(bag_of_words), token_budget=100, max_repeats=9).run("spend")
    assert trace.stop_reason == "budget" and len(model.requests) == 2
    with pytest.raises(ValueError, match="'finish' is the loop's own stop command"):
        AutoGPTAgent(model, [Tool("finish", "Stops.", _obj(), lambda: "0")], AgentMemory(bag_of_words))
    with pytest.raises(TypeError, match="memory must be an AgentMemory"):
        AutoGPTAgent(model, TOOLS, memory=[])


def test_describe_tools_writes_one_signature_line_per_tool():
    optional = Tool("find", "Find it.", {"type": "object", "properties": {"q": {"type": "string"}, "k": {"type": "integer"}},
                                         "required": ["q"]}, lambda q, k=1: q)
    assert describe_tools(as_registry([ADD, optional])) == ("add(a: number, b: number): Add two numbers.\n"
                                                            "find(q: string, k?: integer): Find it.")
