"""Agent loops driven by scripted model replies: parsing, dispatch, error handling, caps, budgets, memory."""

import json
import time

import httpx
import numpy as np
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter

from course_lib.agent.autogpt import AutoGPTAgent
from course_lib.agent.dispatch import as_registry, describe_tools, run_tool
from course_lib.agent.function_calling import FunctionCallingAgent, failed_call_reason
from course_lib.agent.memory import AgentMemory
from course_lib.agent.react import FORMAT_HELP, ReActAgent, ReActParse, arguments_from_text, parse_react
from course_lib.agent.tools import Tool, ToolRegistry
from course_lib.chat import ChatReply, OpenAIChatModel, ScriptedChatModel, ToolCall


def _obj(**props):
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


ADD = Tool("add", "Add two numbers.", _obj(a={"type": "number"}, b={"type": "number"}), lambda a, b: f"{a + b:g}")
UPPER = Tool("upper", "Upper-case a text.", _obj(text={"type": "string"}), lambda text: text.upper())
BOOM = Tool("boom", "Always fails.", _obj(), lambda: 1 / 0)
HANG = Tool("hang", "Never returns in time.", _obj(), lambda: time.sleep(1.0), timeout_s=0.1)
TOOLS = ToolRegistry([ADD, UPPER, BOOM, HANG])
MESSAGES = TypeAdapter(list[ChatCompletionMessageParam])


def reply(text, total=0):
    return ChatReply(text, usage={"prompt_tokens": total - 10, "completion_tokens": 10, "total_tokens": total}
                     if total else {})


# ---------------------------------------------------------------- ReAct parsing

def test_parse_react_reads_every_label():
    p = parse_react('Thought: I need the sum.\nAction: add\nAction Input: {"a": 2, "b": 3}')
    assert p == ReActParse("I need the sum.", "add", '{"a": 2, "b": 3}', None)
    assert parse_react("Thought: done\nFinal Answer: 5") == ReActParse("done", None, None, "5")


def test_parse_react_tolerates_numbering_bold_case_and_missing_thought():
    p = parse_react('I should add.\n**Action 1:** `add`\naction input 1: {"a": 1, "b": 1}')
    assert p == ReActParse("I should add.", "add", '{"a": 1, "b": 1}', None)


def test_parse_react_drops_an_invented_observation_and_what_follows():
    p = parse_react('Action: add\nAction Input: {"a": 1, "b": 2}\nObservation: 99\nFinal Answer: 99')
    assert p.action == "add" and p.final_answer is None and p.action_input == '{"a": 1, "b": 2}'


def test_parse_react_first_of_action_and_final_answer_wins():
    assert parse_react("Final Answer: 4\nAction: add").action is None
    assert parse_react("Action: add\nFinal Answer: 4").final_answer is None
    assert parse_react("just some prose") == ReActParse("just some prose")
    with pytest.raises(TypeError, match="text must be a str"):
        parse_react(None)


def test_arguments_from_text():
    assert arguments_from_text('```json\n{"a": 1, "b": 2}\n```', ADD.parameters) == ({"a": 1, "b": 2}, None)
    assert arguments_from_text('"hello"', UPPER.parameters) == ({"text": "hello"}, None)
    assert arguments_from_text("hello world", UPPER.parameters) == ({"text": "hello world"}, None)
    assert arguments_from_text("", BOOM.parameters) == ({}, None)
    args, error = arguments_from_text("2 and 3", ADD.parameters)
    assert args is None and error.startswith("Error: Action Input must be a JSON object")


# ---------------------------------------------------------------- dispatch

def test_run_tool_turns_every_failure_into_an_observation():
    cases = [("add", {"a": 2, "b": 3}, True, "5"),
             ("add", '{"a": 2, "b": 3}', True, "5"),                      # OpenAI's arguments string
             ("nope", {}, False, "Error: unknown tool 'nope'; available tools: add, upper, boom, hang"),
             ("add", {"a": 2}, False, "Error: add: arguments fail the schema at the arguments object: "
                                      "'b' is a required property"),
             ("add", "{bad", False, "Error: add: arguments are not valid JSON: Expecting property name "
                                    "enclosed in double quotes at position 1"),
             ("boom", {}, False, "Error: boom: ZeroDivisionError: division by zero"),
             ("hang", {}, False, "Error: hang: no answer within 0.1 s (timed out)")]
    for name, arguments, ok, observation in cases:
        result = run_tool(TOOLS, name, arguments)
        assert (result.ok, result.observation) == (ok, observation), name
    assert 0.1 <= run_tool(TOOLS, "hang", {}).seconds < 2
    big = as_registry([Tool("big", "Long output.", _obj(), lambda: "x" * 5000)])
    long = run_tool(big, "big", {}, max_chars=100).observation
    assert long == "x" * 100 + "... [cut 4900 characters]"


def test_as_registry_accepts_lists_mappings_and_registries():
    assert as_registry(TOOLS) is TOOLS
    assert as_registry({"add": ADD}).names == as_registry([ADD]).names == ["add"]
    with pytest.raises(TypeError, match="tool must be a Tool"):
        as_registry([object()])
    with pytest.raises(TypeError, match="tools must be a ToolRegistry, a list of Tool"):
        as_registry("add")
    with pytest.raises(ValueError, match="tools must hold at least one Tool"):
        as_registry([])


# ---------------------------------------------------------------- ReAct loop

def test_react_loop_dispatches_and_feeds_observations_back():
    model = ScriptedChatModel(['Thought: add them\nAction: add\nAction Input: {"a": 2, "b": 3}',
                               "Thought: shout it\nAction: upper\nAction Input: five",
                               "Thought: I know it\nFinal Answer: FIVE (5)"])
    trace = ReActAgent(model, TOOLS).run("What is 2 + 3, shouted?")
    assert trace.answer == "FIVE (5)" and trace.stop_reason == "final_answer"
    assert [s.kind for s in trace.steps] == ["tool", "tool", "final"]
    assert [s.observation for s in trace.steps[:2]] == ["5", "FIVE"]
    assert model.requests[1]["messages"][-1] == {"role": "user", "content": "Observation: 5"}
    assert model.requests[2]["messages"][-1] == {"role": "user", "content": "Observation: FIVE"}
    system = model.requests[0]["messages"][0]["content"]
    assert "add(a: number, b: number): Add two numbers." in system and "[add, upper, boom, hang]" in system


def test_react_bad_input_becomes_observations_and_the_run_goes_on():
    model = ScriptedChatModel(["I am not sure what to do.",                       # no action, no answer
                               "Action: search\nAction Input: {}",                # unknown tool
                               'Action: add\nAction Input: {"a": 1}',             # fails the schema
                               "Action: add\nAction Input: one and two",          # not JSON, two arguments
                               "Action: boom\nAction Input: {}",                  # the tool raises
                               "Action: hang\nAction Input: {}",                  # the tool hangs
                               "Final Answer: gave up politely"])
    trace = ReActAgent(model, TOOLS, max_steps=7).run("Test errors")
    obs = [s.observation for s in trace.steps]
    assert obs[0] == FORMAT_HELP
    assert obs[1].startswith("Error: unknown tool 'search'")
    assert obs[2].startswith("Error: add: arguments fail the schema at the arguments object: 'b' is a required")
    assert obs[3].startswith("Error: Action Input must be a JSON object")
    assert obs[4] == "Error: boom: ZeroDivisionError: division by zero"
    assert obs[5] == "Error: hang: no answer within 0.1 s (timed out)"
    assert [s.kind for s in trace.steps] == ["error"] * 6 + ["final"]
    assert trace.answer == "gave up politely"
    assert all(req["messages"][-1]["content"].startswith(("Observation: Error", "Question"))
               for req in model.requests)


def test_react_step_cap():
    model = ScriptedChatModel(['Action: add\nAction Input: {"a": 1, "b": 1}'] * 10)
    trace = ReActAgent(model, TOOLS, max_steps=3).run("loop for ever")
    assert trace.stop_reason == "max_steps" and trace.answer is None
    assert len(model.requests) == 3 and len(trace.steps) == 3


def test_react_token_budget_stops_before_the_next_call_and_caps_max_tokens():
    class Recording(ScriptedChatModel):
        def chat(self, messages, **kwargs):
            self.max_tokens_seen = getattr(self, "max_tokens_seen", []) + [kwargs["max_tokens"]]
            return super().chat(messages, **kwargs)

    model = Recording([reply('Action: add\nAction Input: {"a": 1, "b": 1}', total=100)] * 10)
    trace = ReActAgent(model, TOOLS, max_steps=10, token_budget=250, max_tokens=64).run("spend tokens")
    assert trace.stop_reason == "budget" and len(model.requests) == 3
    assert model.max_tokens_seen == [64, 64, 50]
    assert trace.tokens == 300 and [s.tokens for s in trace.steps] == [100, 100, 100]


def test_react_rejects_bad_settings():
    with pytest.raises(ValueError, match="ReActAgent.max_steps must be a positive int"):
        ReActAgent(ScriptedChatModel([]), TOOLS, max_steps=0)
    with pytest.raises(ValueError, match="ReActAgent.token_budget must be a positive int"):
        ReActAgent(ScriptedChatModel([]), TOOLS, token_budget=-1)
    with pytest.raises(ValueError, match="question must be a non-empty string"):
        ReActAgent(ScriptedChatModel([]), TOOLS).run("  ")


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
