"""Reading JSON out of model replies, agent traces and their figures, MiniLM-backed agent memory."""

import json

import pytest

from course_lib.agent.jsonreply import find_json_object, parse_json_reply, repair_json
from course_lib.agent.memory import AgentMemory, minilm_embedder
from course_lib.agent.trace import Step, Trace
from course_lib.viz.agent_trace import trace_table, trace_timeline


@pytest.mark.parametrize("text, expected, how", [
    ('{"a": 1}', {"a": 1}, "ok"),
    ('Sure! Here it is:\n```json\n{"a": [1, 2]}\n```\nDone.', {"a": [1, 2]}, "ok"),
    ('{"a": 1,}', {"a": 1}, "repaired"),
    ("{'a': True, 'b': None}", {"a": True, "b": None}, "repaired"),
    ('{"a": {"b": "cut of', {"a": {"b": "cut of"}}, "repaired"),
    ('{"q": "say \\"hi\\\\', {"q": 'say "hi\\'}, "repaired"),                           # escapes inside a string
    ('{"outer": {"inner": 1}, "x": [1, 2', {"outer": {"inner": 1}, "x": [1, 2]}, "repaired"),  # not just the inner {}
])
def test_parse_json_reply_reads_and_repairs(text, expected, how):
    assert parse_json_reply(text) == (expected, how)


def test_parse_json_reply_names_what_it_could_not_read():
    assert parse_json_reply("no json here") == (None, "not valid JSON (Expecting value at line 1 column 1)")
    assert parse_json_reply("[1, 2]") == (None, "valid JSON but not an object")
    assert find_json_object('x {"a": {"b": 1} y') == {"b": 1}          # lenient search finds a nested object
    assert repair_json('```\n{"a": 1,}\n```') == '{"a": 1}'
    with pytest.raises(TypeError, match="text must be a str"):
        find_json_object(3)


@pytest.mark.parametrize("text, expected", [
    ('{"a": "True story",}', {"a": "True story"}),                                # issue 24: was 'true story'
    ('{"s": "keep ,} in strings", "n": None,}', {"s": "keep ,} in strings", "n": None}),  # was "keep } in strings"
    ('{"q": "it\'s None of it", \'k\': False}', {"q": "it's None of it", "k": False}),
    ("{'a': True, 'b': [None, False,],}", {"a": True, "b": [None, False]}),         # Python literals outside strings
    ('{"a": [1, 2,', {"a": [1, 2]}),                                                # cut off after a comma
])
def test_repair_json_never_edits_inside_strings(text, expected):
    """One string-aware repair (issue 24): Python literals, quotes and commas are fixed only outside strings."""
    assert json.loads(repair_json(text)) == expected
    assert parse_json_reply(text) == (expected, "repaired")


def test_chains_parser_uses_the_agent_repair():
    """chains.parsers has no repair of its own: its steps are the agent's functions, and both agree."""
    from course_lib.agent import jsonreply
    from course_lib.chains import parsers
    assert parsers.scan is jsonreply.scan and parsers.normalise is jsonreply.normalise
    assert parsers.strip_fences is jsonreply.strip_fences
    for text in ['{"a": "True story",}', "{'a': True, 'b': None}", '{"a": {"b": "cut of']:
        assert parsers.parse_json(text) == json.loads(repair_json(text))


def sample_trace():
    return Trace("What is 2+3?", [
        Step(1, "tool", "add them", "add", {"a": 2, "b": 3}, "5", 100, 12, 0.0, 0.5, 0.01),
        Step(2, "error", "", "mul", {}, "Error: unknown tool 'mul' <b>", 130, 8, 0.52, 0.4),
        Step(3, "final", "done", "Final Answer", None, "5", 150, 5, 0.93, 0.3)], "5", "final_answer")


def test_trace_rows_totals_and_html():
    trace = sample_trace()
    assert trace.tokens == 405 and trace.seconds == pytest.approx(1.23)
    rows = trace.rows(width=10)
    assert rows[0] == {"step": 1, "kind": "tool", "thought": "add them", "action": 'add {"a":…',
                       "observation": "5", "tokens": 112, "model s": 0.5, "tool s": 0.01}
    html = trace.to_html()
    assert html.count("<tr>") == 4 and "&lt;b&gt;" in html and "<b>" not in html
    with pytest.raises(ValueError, match="kind must be one of"):
        Step(1, "thinking")


def test_trace_figures():
    trace = sample_trace()
    table = trace_table(trace)
    assert list(table.data[0].cells.values[0]) == [1, 2, 3]
    assert list(table.data[0].header.values)[:3] == ["step", "kind", "thought"]
    timeline = trace_timeline(trace)
    model, tool = timeline.data
    assert list(model.base) == [0.0, 0.52, 0.93] and list(model.x) == [0.5, 0.4, 0.3]
    assert list(tool.base) == [0.5, 0.92, 1.23] and list(tool.x) == [0.01, 0.0, 0.0]
    assert list(model.text) == ["112 tok", "138 tok", "155 tok"]
    with pytest.raises(TypeError, match="trace must be a course_lib.agent.trace.Trace"):
        trace_table([])


def test_minilm_memory_retrieves_by_meaning():
    """Real all-MiniLM-L6-v2 embeddings: a paraphrase with no shared content word is found first."""
    memory = AgentMemory(minilm_embedder())
    for text in ["The calculator returned 42 for 6 * 7.", "It is raining heavily in Oslo today.",
                 "The Python sandbox printed the list of files."]:
        memory.add(text, source="test")
    (best, score), (_, second) = memory.relevant("What was the weather like?", k=2)
    assert best == "It is raining heavily in Oslo today." and score > second
    assert memory.collection.get(1)[1] == {"text": best, "source": "test"}
    assert json.dumps(memory.collection.vectors.shape) == "[3, 384]"
