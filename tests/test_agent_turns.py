"""Turn grammars (course_lib.constrained.turns): every path is a parseable turn, and a final answer ends the loop.

A seeded random walk over each grammar's automaton plays a model that may write anything the grammar
admits; each walk's text must be read by the loop's *own* parser as a call that passes the tool's
JSON Schema or as a final answer. Then scripted models built from such turns drive the real loops
(with the real tools: calculator, sandboxed Python, search) to a final answer. SmolLM2 itself, held to
each grammar, writes only turns the grammar accepts.
"""

from __future__ import annotations

import json
import random

import pytest

from course_lib.agent.autogpt import FINISH, read_command
from course_lib.agent.experts import FORMATS, make_agent
from course_lib.agent.function_calling import failed_call_reason
from course_lib.agent.jsonreply import parse_json_reply
from course_lib.agent.memory import AgentMemory
from course_lib.agent.react import parse_react
from course_lib.agent.tools import Tool, ToolRegistry, calculator_tool, date_tools, python_tool, search_tool
from course_lib.chat import LocalChatModel, ScriptedChatModel, parse_tool_call
from course_lib.constrained.grammar import Automaton
from course_lib.constrained.turns import Text, TurnGrammar, bounded, turn_matcher
from course_lib.rag.types import Passage


class Docs:  # a two-passage retriever: the search tool without building the corpus
    def search(self, query, k):
        return [Passage("json.tool#0", "json.tool", "json.tool", "Command-line tool to pretty-print JSON.", 3.0),
                Passage("re.compile#0", "re.compile", "re.compile", "Compile a regular expression pattern.", 1.0)][:k]


TOOLS = ToolRegistry([calculator_tool(), python_tool(), *date_tools(), search_tool(Docs(), k=1)])
SCHEMAS = TOOLS.to_openai()


def walk(automaton: Automaton, rng: random.Random, stop: float = 0.3, limit: int = 2000) -> str:
    """A random sentence of the grammar: random allowed bytes, stopping in accepting states with prob ``stop``."""
    sid, out = automaton.start, bytearray()
    for _ in range(limit):
        row = automaton.row(sid)
        if automaton.accepting(sid) and (not row or rng.random() < stop):
            return out.decode("utf-8")
        b = rng.choice(sorted(row))
        out.append(b)
        sid = row[b]
    raise AssertionError(f"no sentence within {limit} bytes: {bytes(out)[:80]!r}")


def read_turn(fmt: str, text: str) -> tuple[str, str | None, dict | None]:
    """``("call", name, args)`` or ``("final", answer, None)`` as the loop ``fmt`` reads ``text``; asserts it parses."""
    if fmt == "react":
        p = parse_react(text)
        if p.action is not None:
            return "call", p.action, json.loads(p.action_input)
        assert p.final_answer, text
        return "final", p.final_answer, None
    if fmt == "function_calling":
        call = parse_tool_call(text, SCHEMAS)
        if call is not None:
            return "call", call.name, call.arguments
        assert failed_call_reason(text, TOOLS.names) is None and text.strip(), text
        return "final", text, None
    obj, how = parse_json_reply(text)
    assert how == "ok", (how, text)
    name, args, thoughts, error = read_command(obj)
    assert error is None and set(thoughts) == {"text", "reasoning", "plan", "criticism"}, text
    return ("final", args["answer"], None) if name == FINISH else ("call", name, args)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_path_of_the_turn_grammar_is_a_valid_call_or_a_final_answer(fmt):
    automaton, rng, kinds = Automaton(turn_matcher(fmt, SCHEMAS)), random.Random(0), set()
    for _ in range(150):
        kind, name, args = read_turn(fmt, walk(automaton, rng))
        kinds.add(kind)
        if kind == "call":
            TOOLS[name].check(args)  # raises ValueError if the arguments fail the tool's schema
    assert kinds == {"call", "final"}  # both branches are reachable


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_grammar_refuses_what_the_loop_could_not_read(fmt):
    automaton = Automaton(turn_matcher(fmt, SCHEMAS))
    bad = {"react": ['Thought: x\nAction: nope\nAction Input: {}', "Final Answer: 4",
                     'Thought: x\nAction: calculator\nAction Input: {"expr": "1"}', "Thought: a\nb\nFinal Answer: 4"],
           "function_calling": ['{"tool": "nope", "args": {}}', '{"tool": "calculator", "args": {"expression": 1}}',
                                "{not json", 'say "hi"', ""],
           "autogpt": ['{"command": {"name": "finish", "args": {"answer": "4"}}}',
                       '{"thoughts": {"text": "a", "reasoning": "b", "plan": "c", "criticism": "d"}, '
                       '"command": {"name": "nope", "args": {}}}']}[fmt]
    for text in bad:
        assert not automaton.matches(text), text


def test_text_and_bounded_strings_close_within_their_length():
    line = Automaton(Text(1, 5, banned=b"{"))
    assert line.matches("héllo") and not line.matches("hello!") and not line.matches("") and not line.matches("{a")
    assert not line.matches("a\nb") and not line.matches("a\x00") and not line.matches(" a")
    schema = bounded({"type": "object", "properties": {"s": {"type": "string"}, "t": {"type": "string", "maxLength": 3},
                                                       "a": {"type": "array", "items": {"type": "string"}}}})
    assert schema["properties"]["s"]["maxLength"] == 100 and schema["properties"]["t"]["maxLength"] == 3
    assert schema["properties"]["a"]["items"]["maxLength"] == 100
    with pytest.raises(ValueError, match="min_len"):
        Text(3, 2)
    with pytest.raises(ValueError, match="fmt must be one of"):
        turn_matcher("webgpt", SCHEMAS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_final_answer_ends_the_loop_with_the_real_tools(fmt):
    automaton, rng = Automaton(turn_matcher(fmt, SCHEMAS)), random.Random(1)
    turns = {"call": [], "final": []}
    while len(turns["call"]) < 3 or not turns["final"]:
        text = walk(automaton, rng)
        turns[read_turn(fmt, text)[0]].append(text)
    script = turns["call"][:3] + turns["final"][:1]
    memory = AgentMemory(lambda texts: [[float(len(t)), 1.0] for t in texts]) if fmt == "autogpt" else None
    trace = make_agent(fmt, ScriptedChatModel(script), TOOLS, memory, max_steps=6).run("Test the grammar.")
    assert trace.stop_reason == "final_answer" and trace.answer == read_turn(fmt, script[-1])[1].strip()
    assert [s.kind for s in trace.steps if s.kind != "final"] and trace.steps[-1].kind == "final"


def test_bad_model_output_stays_an_observation_in_every_loop():
    boom = Tool("boom", "Always fails.", {"type": "object", "properties": {}}, lambda: 1 / 0)
    hang = Tool("hang", "Never answers.", {"type": "object", "properties": {}},
                lambda: __import__("time").sleep(5) or "late", timeout_s=0.2)
    tools = ToolRegistry([*TOOLS, boom, hang])
    calls = [("nope", {}), ("calculator", {"expr": "1"}), ("boom", {}), ("hang", {}),
             ("python", {"code": "raise ValueError('bad')"}), ("python", {"code": "while True: pass"})]
    react = ["not a turn at all"] + [f"Thought: t\nAction: {n}\nAction Input: {json.dumps(a)}" for n, a in calls]
    fc = ['{"tool": "calculator", "args": {"expression": '] + [json.dumps({"tool": n, "args": a}) for n, a in calls]
    auto = ["{{{ not json"] + [json.dumps({"thoughts": {"text": "t"}, "command": {"name": n, "args": a}})
                               for n, a in calls]
    final = {"react": "Final Answer: done", "function_calling": "done",
             "autogpt": json.dumps({"command": {"name": FINISH, "args": {"answer": "done"}}})}
    for fmt, script in zip(FORMATS, (react, fc, auto)):
        memory = AgentMemory(lambda texts: [[1.0, float(len(t))] for t in texts]) if fmt == "autogpt" else None
        trace = make_agent(fmt, ScriptedChatModel(script + [final[fmt]]), tools, memory, max_steps=10,
                           **({"max_repeats": 10} if fmt == "autogpt" else {})).run("Break things.")
        assert trace.stop_reason == "final_answer" and trace.answer == "done", fmt
        observations = [s.observation for s in trace.steps[:-1]]
        assert len(observations) == 7 and all(o.startswith("Error") for o in observations[:5]), (fmt, observations)
        assert "ValueError: bad" in observations[5] and "[stopped:" in observations[6], (fmt, observations)


@pytest.mark.parametrize("fmt", FORMATS)
def test_smollm2_held_to_the_turn_grammar_writes_only_whole_turns(fmt, smollm2, smollm2_bpe):
    grammar = TurnGrammar.from_tokenizer(turn_matcher(fmt, SCHEMAS), smollm2_bpe)
    model = LocalChatModel(smollm2, smollm2_bpe, constraint=grammar)
    memory = AgentMemory(lambda texts: [[1.0, float(len(t))] for t in texts]) if fmt == "autogpt" else None
    seen = []

    class Spy:  # records every raw reply the loop gets
        name = "spy"

        def chat(self, messages, **kwargs):
            reply = model.chat(messages, **kwargs)
            seen.append(reply)
            return reply

    make_agent(fmt, Spy(), TOOLS, memory, max_steps=1, max_tokens=160).run("What is 12 * 34, plus 5?")
    for reply in seen:
        text = reply.content if not reply.tool_calls else json.dumps(
            {"tool": reply.tool_calls[0].name, "args": reply.tool_calls[0].arguments})
        if reply.finish_reason == "stop":
            assert grammar.matches(text), text
            read_turn(fmt, text)
