"""The multi-step task set (course_lib.agent.tasks) and the scripted experts (course_lib.agent.experts).

The split must be honest (disjoint templates and values, at least 200 test tasks, two tool calls each),
the gold answers must be what the real tools give, the checker must accept the right answer and refuse
near-misses, and the experts' demonstrations must be in each loop's own format.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from course_lib.agent import experts, tasks
from course_lib.agent.memory import AgentMemory
from course_lib.agent.tools import ToolRegistry, calculator_tool, convert_units_tool, date_tools, python_tool

DEV, TEST = tasks.load("dev"), tasks.load("test")
NO_SEARCH = ToolRegistry([calculator_tool(), python_tool(), convert_units_tool(), *date_tools()])


def test_sizes_families_and_two_calls_each():
    assert len(TEST) >= 200 and len(DEV) >= 100 and len(tasks.load()) == len(DEV) + len(TEST)
    assert set(Counter(t.family for t in TEST)) == set(tasks.FAMILIES) == set(Counter(t.family for t in DEV))
    for t in DEV + TEST:
        assert len(t.plan) >= 2 and set(t.gold) in ({"number"}, {"texts"}), t.id
    assert len({t.id for t in DEV + TEST}) == len(DEV + TEST)
    with pytest.raises(ValueError, match="split must be one of"):
        tasks.load("train")


def test_dev_and_test_share_no_template_and_no_value():
    assert not {t.template for t in DEV} & {t.template for t in TEST}
    assert not {t.question for t in DEV} & {t.question for t in TEST}
    for family in tasks.FAMILIES:
        first = {split: {json.dumps(t.plan[0]["args"], sort_keys=True) for t in group if t.family == family}
                 for split, group in (("dev", DEV), ("test", TEST))}
        assert not first["dev"] & first["test"], family
    queries = {split: {s["args"]["query"] for t in group if t.family == "docs" for s in t.plan}
               for split, group in (("dev", DEV), ("test", TEST))}
    assert not queries["dev"] & queries["test"]


def test_gold_answers_are_what_the_real_tools_give():
    for t in [t for t in TEST if t.family != "docs"][::9]:  # the search family is checked through the experts below
        results = []
        for step in t.plan:
            results.append(tasks.result_value(step["tool"], NO_SEARCH.call(step["tool"], tasks.fill(step["args"], results))))
        assert tasks.is_correct(t, tasks.fill(t.answer, results)), (t.id, results, t.gold)


def test_the_checker_takes_the_last_number_and_needs_every_text():
    number = tasks.Task("x", "test", "arith", "a", "q", (), "{1}", {"number": 4617.0})
    assert tasks.is_correct(number, "The answer is 4,617.") and tasks.is_correct(number, "44 * 91 + 613 = 4617")
    assert tasks.is_correct(number, "about 4617.3")          # within 1e-4 relative
    assert not tasks.is_correct(number, "4617 was my guess, but it is 4004")
    assert not tasks.is_correct(number, "4620") and not tasks.is_correct(number, None)
    assert not tasks.is_correct(number, "no number here")
    texts = tasks.Task("y", "test", "dates", "d", "q", (), "{0} is a {1}", {"texts": ["2027-01-31", "Sunday"]})
    assert tasks.is_correct(texts, "2027-01-31 is a sunday") and not tasks.is_correct(texts, "It is a Sunday")
    assert tasks.fill({"value": {"ref": 0}, "date": "{1}"}, ["7.50", "2024-01-02"]) == {"value": 7.5,
                                                                                          "date": "2024-01-02"}
    assert tasks.fill({"value": {"ref": 0}}, ["12.0"]) == {"value": 12}


def test_no_docs_answer_is_written_in_its_question():
    for t in DEV + TEST:
        for text in t.gold.get("texts", []):
            assert text.lower() not in t.question.lower(), t.id


@pytest.fixture(scope="module")
def docs_tools():
    return tasks.task_tools()


@pytest.mark.parametrize("fmt", experts.FORMATS)
def test_expert_demonstrations_are_in_each_loops_own_format(fmt, docs_tools):
    task = next(t for t in DEV if t.family == "docs")
    memory = AgentMemory(lambda texts: [[1.0, float(len(t))] for t in texts]) if fmt == "autogpt" else None
    chats = experts.demonstrations(task, fmt, docs_tools, memory)
    replies = [m["content"] for chat in chats for m in chat if m["role"] == "assistant"]
    if fmt == "react":
        assert len(chats) == 1 and replies[0] == 'Thought: I search the docs.\nAction: search\nAction Input: ' + \
            json.dumps(task.plan[0]["args"]) and replies[-1].startswith("Thought: I know the answer.\nFinal Answer: ")
        assert chats[0][3]["content"].startswith("Observation: [1] ")
    elif fmt == "function_calling":
        assert len(chats) == 1 and json.loads(replies[0]) == {"tool": "search", "args": task.plan[0]["args"]}
        assert chats[0][3]["content"].startswith("Tool result: [1] ") and chats[0][0]["role"] == "system"
    else:
        assert len(chats) == 3 and all(len(chat) == 3 for chat in chats)
        commands = [json.loads(r)["command"] for r in replies]
        assert [c["name"] for c in commands] == ["search", "search", "finish"]
        assert chats[2][1]["content"].count("step ") >= 2  # the memories of both searches come back
    assert tasks.is_correct(task, replies[-1])


def test_the_expert_refuses_a_broken_plan(docs_tools):
    task = tasks.Task("bad", "dev", "arith", "a", "q", ({"tool": "calculator", "args": {"expression": "1 / 0"}},
                                                        {"tool": "calculator", "args": {"expression": "{0} + 1"}}),
                      "{1}", {"number": 2.0})
    with pytest.raises(RuntimeError, match="the expert failed task bad"):
        experts.demonstrations(task, "react", docs_tools)
    with pytest.raises(ValueError, match="fmt must be one of"):
        experts.ExpertModel(task, "webgpt")
