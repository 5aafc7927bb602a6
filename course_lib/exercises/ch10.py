"""Exercises of chapter 10 (agents)."""

from __future__ import annotations

import json
import random
import re

from course_lib.agent.react import parse_react
from course_lib.agent.tools import ERROR_PREFIX, Tool, ToolRegistry
from course_lib.constrained.grammar import Automaton, Choice, Literal, Seq, compile_schema
from course_lib.constrained.json_values import String
from course_lib.constrained.turns import Text
from course_lib.exercises import exercise

REACT_CASES = [
    'Thought: add them\nAction: calculator\nAction Input: {"expression": "2 + 2"}',
    "Thought: I know it\nFinal Answer: 4",
    'Action: calculator\nAction Input: {"expression": "1 + 1"}\nObservation: 2\nFinal Answer: 2',
    "I think the answer is 4.",
    'thought: lower case\naction: weekday\naction input: {"date": "2024-01-01"}',
]


def _expected_action(text: str):
    p = parse_react(text)
    if p.action is not None:
        return p.action, (p.action_input or "").strip()
    return ("Final Answer", p.final_answer.strip()) if p.final_answer is not None else None


def _parse_answer_first(text):       # wrong: a Final Answer anywhere wins, even after an invented Observation
    m = re.search(r"Final Answer:\s*(.*)", text, re.I)
    if m:
        return "Final Answer", m.group(1).strip()
    a, i = re.search(r"Action:\s*(.*)", text, re.I), re.search(r"Action Input:\s*(.*)", text, re.I)
    return (a.group(1).strip(), i.group(1).strip() if i else "") if a else None


def _parse_case_sensitive(text):     # wrong: only "Action:" with a capital A
    text = text.split("Observation:")[0]
    a, i = re.search(r"^Action:\s*(.*)$", text, re.M), re.search(r"^Action Input:\s*(.*)$", text, re.M)
    if a:
        return a.group(1).strip(), i.group(1).strip() if i else ""
    f = re.search(r"^Final Answer:\s*(.*)$", text, re.M)
    return ("Final Answer", f.group(1).strip()) if f else None


@exercise("10.1", answer="parse_action", wrong=(_parse_answer_first, _parse_case_sensitive), writes_code=True)
def check_parse_action(fn) -> str:
    """Check exercise 10.1: the learner's ReAct action parser against ``parse_react``."""
    for text in REACT_CASES:
        got, want = fn(text), _expected_action(text)
        assert got == want, f"回复 {text!r} 应解析为 {want!r}，你得到 {got!r}"
    return "解析器够稳：大小写、编造的 Observation、没有格式的回答都处理了。"


def _word_count_no_required():       # wrong: the schema does not require "text"
    return Tool("word_count", "Count the words in a text.",
                {"type": "object", "properties": {"text": {"type": "string"}}}, lambda text="": str(len(text.split())))


def _word_count_returns_int():       # wrong: tools must return a str (the observation)
    return Tool("word_count", "Count the words in a text.",
                {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
                lambda text: len(text.split()))


@exercise("10.2", answer="word_count_tool", wrong=(_word_count_no_required, _word_count_returns_int), writes_code=True)
def check_word_count_tool(fn) -> str:
    """Check exercise 10.2: the learner's ``word_count`` tool (schema and result) against a ``ToolRegistry`` call."""
    tool = fn()
    assert isinstance(tool, Tool), f"word_count_tool() 应返回 course_lib.agent.tools.Tool，得到 {type(tool).__name__}"
    assert tool.name == "word_count", f"工具名 (name) 应为 'word_count'，得到 {tool.name!r}"
    registry = ToolRegistry([tool])
    assert registry.call("word_count", {"text": "the quick brown fox"}) == "4", "4 个单词应返回字符串 '4'（工具的观察是 str）"
    assert registry.call("word_count", '{"text": "  one   two "}') == "2", "应按任意空白 (whitespace) 切分"
    try:
        tool.check({})
    except ValueError:
        pass
    else:
        raise AssertionError("不带 'text' 的调用应通不过 schema：把它列进 'required'")
    assert registry.call("word_count", {"text": 3}).startswith(ERROR_PREFIX), "数字不是文本：text 的类型 (type) 应为 'string'"
    return "工具 = 名字 + 描述 + JSON Schema + 函数；坏参数在进函数之前就被挡住了。"


TRUNCATED = {'{"a": 1': {"a": 1}, '{"a": [1, 2': {"a": [1, 2]}, '{"a": {"b": "cut': {"a": {"b": "cut"}},
             '{"a": "}{", "b": [': {"a": "}{", "b": []}, '{"q": "say \\"hi': {"q": 'say "hi'}, '{"x": []}': {"x": []}}


def _close_counting(text):           # wrong: counts brackets inside strings too, never closes a string
    return text + "]" * (text.count("[") - text.count("]")) + "}" * (text.count("{") - text.count("}"))


def _close_no_string(text):          # wrong: closes brackets but not an open string
    stack, in_string, escaped = [], False, False
    for ch in text:
        if in_string:
            escaped = ch == "\\" and not escaped
            in_string = not (ch == '"' and not escaped)
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    return text + "".join(reversed(stack))


@exercise("10.3", answer="close_json", wrong=(_close_counting, _close_no_string), writes_code=True)
def check_close_json(fn) -> str:
    """Check exercise 10.3: the learner's closing of truncated JSON against ``json.loads`` of the expected values."""
    for text, want in TRUNCATED.items():
        got = fn(text)
        assert isinstance(got, str) and got.startswith(text), f"close_json 只能在 {text!r} 末尾追加，你得到 {got!r}"
        try:
            value = json.loads(got)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"close_json({text!r}) = {got!r} 不是合法 JSON（{exc.msg}）") from None
        assert value == want, f"close_json({text!r}) 解析为 {value!r}，应为 {want!r}"
    return "被 max_tokens 截断的 JSON 补全了：引号内的括号不算，没闭合的字符串先闭合。"


NAMES = ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
LOOKUP_OK = ['Action: lookup\nAction Input: {"name": "Ada Lovelace"}', 'Action: lookup\nAction Input: {"name": "Grace Hopper"}',
             "Final Answer: 1815", "Final Answer: Turing was born in London in 1912."]
LOOKUP_BAD = ['Action: lookup\nAction Input: {"name": "Eve"}', "Final Answer: ", "Final Answer: one\ntwo",
              "Final Answer: " + "x" * 41, 'Action: lookup\nAction Input: {"name": "Alan Turing", "x": 1}',
              'Action: search\nAction Input: {"name": "Alan Turing"}', 'Action: lookup\nAction Input: {}']


def _lookup_free_name(names):        # wrong: any JSON string passes as the name, not only the known ones
    call = Seq([Literal(b'Action: lookup\nAction Input: {"name": '), String(1, 40), Literal(b"}")])
    return Choice([call, Seq([Literal(b"Final Answer: "), Text(1, 40)])])


def _lookup_unbounded_answer(names):  # wrong: the answer may run on (no length bound)
    schema = {"type": "object", "properties": {"name": {"enum": list(names)}}, "required": ["name"],
              "additionalProperties": False}
    call = Seq([Literal(b"Action: lookup\nAction Input: "), compile_schema(schema)])
    return Choice([call, Seq([Literal(b"Final Answer: "), Text(1, 1000)])])


@exercise("10.4", answer="lookup_turn", wrong=(_lookup_free_name, _lookup_unbounded_answer), writes_code=True)
def check_lookup_turn(fn) -> str:
    """Check exercise 10.4: the learner's turn grammar for a ``lookup(name)`` tool, by matching and random walks."""
    automaton = Automaton(fn(NAMES))
    for text in LOOKUP_OK:
        assert automaton.matches(text), f"合法的一轮 {text!r} 被你的语法 (grammar) 拒绝了"
    for text in LOOKUP_BAD:
        assert not automaton.matches(text), f"{text!r} 不该被接受：循环读不懂它，或它超出了约束"
    rng = random.Random(0)
    for _ in range(60):  # a model that writes anything the grammar allows must still write a readable turn
        sid, out = automaton.start, bytearray()
        while not (automaton.accepting(sid) and (not automaton.row(sid) or rng.random() < 0.3)):
            row = automaton.row(sid)
            assert row, f"状态卡死 (dead state)：{bytes(out)!r} 之后无路可走"
            b = rng.choice(sorted(row))
            out.append(b)
            sid = row[b]
        turn = parse_react(out.decode("utf-8"))
        if turn.action is not None:
            assert turn.action == "lookup" and json.loads(turn.action_input)["name"] in NAMES, out.decode()
        else:
            assert turn.final_answer and len(turn.final_answer) <= 40, out.decode()
    return "这门语言里每一句都是循环读得懂的一轮：要么合法调用 lookup，要么一句不超过 40 字符的最终答案。"
