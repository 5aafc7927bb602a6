"""ReAct agent loop driven by scripted model replies: parsing, dispatch, error handling, caps, budgets.

Function-calling, memory and AutoGPT tests live in test_agent_function_calling.py.
"""

import pytest

from course_lib.agent.dispatch import as_registry, run_tool
from course_lib.agent.react import FORMAT_HELP, ReActAgent, ReActParse, arguments_from_text, parse_react
from course_lib.agent.tools import Tool
from course_lib.chat import ScriptedChatModel
from tests.agent_loop_doubles import ADD, BOOM, TOOLS, UPPER, _obj, reply

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
