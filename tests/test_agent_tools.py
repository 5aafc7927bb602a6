"""The agent's tools (``course_lib.agent.tools``, ``calculator``, ``everyday``) against references:
Python's own arithmetic, exact unit definitions, ``datetime``, OpenAI's tool type; every failure an
observation string.
"""

from __future__ import annotations

import collections
import json
import math
import random
import time
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionToolParam
from pydantic import TypeAdapter, ValidationError

from course_lib.agent import everyday
from course_lib.agent.calculator import MAX_INT_BITS, safe_eval
from course_lib.agent.sandbox import Limits
from course_lib.agent.tools import (
    ERROR_PREFIX,
    Tool,
    ToolRegistry,
    default_tools,
    python_tool,
    search_tool,
)

FUNCTIONS = {"abs": abs, "round": round, "floor": math.floor, "ceil": math.ceil, "sqrt": math.sqrt,
             "min": min, "max": max}
OPERATORS = ["+", "-", "*", "/", "//", "%"]


def random_expression(rng: random.Random, depth: int) -> str:
    """A random arithmetic expression over ints and floats (zeros and negatives included), every operator and
    function of ``FUNCTIONS``, ``**`` with small exponents; ints stay far below the calculator's size bound."""
    if depth == 0 or rng.random() < 0.2:
        leaf = rng.choice([rng.randint(-20, 20), rng.randint(-10**6, 10**6), round(rng.uniform(-100, 100), 3), rng.choice([0, 0.0])])
        return repr(leaf) if rng.random() < 0.8 else f"({leaf!r}) ** {rng.randint(0, 3)}"
    kind = rng.random()
    if kind < 0.6:
        return f"({random_expression(rng, depth - 1)} {rng.choice(OPERATORS)} {random_expression(rng, depth - 1)})"
    if kind < 0.7:
        return f"-{random_expression(rng, depth - 1)}"
    name = rng.choice(list(FUNCTIONS))
    args = [random_expression(rng, depth - 1) for _ in range(2 if name in ("min", "max") else 1)]
    return f"{name}({', '.join(args)})"


def test_calculator_agrees_with_python_arithmetic():
    rng = random.Random(0)
    outcomes = collections.Counter()
    for _ in range(3000):
        text = random_expression(rng, depth=4)
        try:
            expected = eval(text, {"__builtins__": {}}, FUNCTIONS)  # the reference, on generated arithmetic only
        except ZeroDivisionError:
            with pytest.raises(ValueError, match="divides by zero"):
                safe_eval(text)
            outcomes["ZeroDivisionError"] += 1
            continue
        except (ValueError, OverflowError) as e:  # math domain errors, floor(inf), float ** overflow
            with pytest.raises(ValueError, match="^expression") as caught:
                safe_eval(text)
            assert str(e) in str(caught.value), text
            outcomes[type(e).__name__] += 1
            continue
        got = safe_eval(text)
        assert type(got) is type(expected) and (got == expected or math.isnan(got) and math.isnan(expected)), text
        outcomes[type(got).__name__] += 1
    print(outcomes)
    assert outcomes["int"] > 300 and outcomes["float"] > 300 and outcomes["ZeroDivisionError"] > 30
    assert outcomes["ValueError"] > 30  # sqrt of negatives


@pytest.mark.parametrize("text, value", [("2 * (3 + 4) ** 2 / sqrt(16)", 24.5), ("7 // 2 + 7 % 2", 4), ("-2 ** 2", -4),
                                         ("log(8, 2)", 3.0), ("round(pi, 3)", 3.142), ("factorial(5)", 120),
                                         ("2 ** -1", 0.5), ("max(1, 2, 3) - min(4, 5)", -1)])
def test_calculator_examples(text, value):
    assert safe_eval(text) == value


@pytest.mark.parametrize("text, message", [
    ("__import__('os')", "only calls of"), ("().__class__.__bases__", "attribute access"), ("(1).real", "attribute"),
    ("open('x')", "only calls of"), ("x + 1", "unknown name 'x'"), ("lambda: 1", "Lambda is not allowed"),
    ("[1, 2]", "List is not allowed"), ("'a' * 3", "only numbers"), ("True + 1", "only numbers"),
    ("2j", "only numbers"), ("1 if 1 else 0", "IfExp"), ("(y := 2)", "NamedExpr"), ("sqrt(x=4)", "keyword"),
    ("2 ** 100000", "exponent 100000 too large"), ("9 ** 9 ** 9", "exponent 387420489 too large"),
    ("10 ** 5000", "too large"), ("factorial(10 ** 6)", "factorial needs an integer"), ("10.0 ** 400", "overflows"),
    ("1 / 0", "divides by zero"), ("sqrt(-1)", "math domain error"), ("(-8) ** 0.5", "real number"),
    ("1 +", "not valid arithmetic"), ("1" * 501, "at most 500"), ("min()", "at least 1 argument"),
])
def test_calculator_refuses_with_a_clear_message(text, message):
    with pytest.raises(ValueError, match=message):
        safe_eval(text)


def test_calculator_bounds_keep_every_integer_small():
    assert safe_eval("2 ** 9999").bit_length() == 10000 <= MAX_INT_BITS
    with pytest.raises(ValueError, match="too large"):
        safe_eval("2 ** 9999 * 4")
    with pytest.raises(TypeError, match="expression must be a str"):
        safe_eval(42)


@pytest.mark.parametrize("value, src, dst, expected", [
    (1, "mi", "km", 1.609344), (1, "in", "cm", 2.54), (1, "ft", "in", 12), (1, "yd", "ft", 3), (1, "nmi", "m", 1852),
    (1, "lb", "g", 453.59237), (1, "lb", "oz", 16), (1, "t", "kg", 1000), (1, "day", "s", 86400),
    (1, "week", "min", 10080), (1, "h", "ms", 3.6e6), (100, "C", "F", 212), (0, "K", "C", -273.15), (-40, "C", "F", -40),
    (98.6, "F", "C", 37), (300, "K", "C", 26.85), (5, "miles", "Feet", 26400), (20, "°C", "kelvin", 293.15),
    (2, "kilograms", "pounds", 2 / 0.45359237), (90, "minutes", "hours", 1.5),
])
def test_unit_conversions_match_the_definitions(value, src, dst, expected):
    assert everyday.convert_units(value, src, dst) == pytest.approx(expected, rel=1e-12, abs=1e-9)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.floats(-1e6, 1e6), st.sampled_from(["length", "mass", "time", "temperature"]), st.data())
def test_unit_conversion_round_trips(value, kind, data):
    units = list(everyday.TEMPERATURE) if kind == "temperature" else [u for u, (d, _) in everyday.UNITS.items()
                                                                        if d == kind]
    a, b = data.draw(st.sampled_from(units)), data.draw(st.sampled_from(units))
    back = everyday.convert_units(everyday.convert_units(value, a, b), b, a)
    assert back == pytest.approx(value, rel=1e-9, abs=1e-6)


def test_unit_errors_name_the_argument():
    with pytest.raises(ValueError, match="from_unit 'kg' is a mass but to_unit 'm' is a length"):
        everyday.convert_units(1, "kg", "m")
    with pytest.raises(ValueError, match="to_unit 'parsec' is not a known unit"):
        everyday.convert_units(1, "m", "parsec")
    with pytest.raises(TypeError, match="value must be a number"):
        everyday.convert_units("1", "m", "km")


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.dates(), st.dates(), st.integers(-10_000, 10_000))
def test_dates_agree_with_datetime(a, b, days):
    assert everyday.date_diff(a.isoformat(), b.isoformat()) == (b - a).days
    names = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    assert everyday.weekday(a.isoformat()) == names[a.weekday()]
    if date.min + timedelta(days=10_000) <= a <= date.max - timedelta(days=10_000):
        assert everyday.add_days(a.isoformat(), days) == (a + timedelta(days=days)).isoformat()


def test_date_errors_name_the_argument():
    assert everyday.weekday("2026-12-01") == "Tuesday" and everyday.date_diff("2026-01-01", "2026-12-01") == 334
    with pytest.raises(ValueError, match="end must be a date 'YYYY-MM-DD', got '2026-02-30'"):
        everyday.date_diff("2026-01-01", "2026-02-30")
    with pytest.raises(TypeError, match="date must be a str"):
        everyday.weekday(20261201)
    with pytest.raises(ValueError, match="leaves the calendar"):
        everyday.add_days("9999-12-31", 1)


@dataclass
class Passage:
    id: str
    title: str
    text: str
    score: float


class FakeRetriever:
    """Scores passages by how many query words they contain (a stand-in for course_lib.rag)."""

    def __init__(self, passages):
        self.passages, self.calls = passages, []

    def search(self, query: str, k: int):
        self.calls.append((query, k))
        words = set(query.lower().split())
        scored = [Passage(p.id, p.title, p.text, float(len(words & set(p.text.lower().split())))) for p in self.passages]
        return sorted([p for p in scored if p.score > 0], key=lambda p: -p.score)[:k]


PASSAGES = [Passage("d1", "Paris", "Paris is the capital of France " + "and a city " * 50, 0.0),
            Passage("d2", "Berlin", "Berlin is the capital of Germany", 0.0),
            Passage("d3", "Rivers", "The Seine flows through Paris", 0.0)]


def test_search_tool_formats_the_retrievers_passages():
    retriever = FakeRetriever(PASSAGES)
    tool = search_tool(retriever, k=2, max_chars=40)
    out = tool.run({"query": "capital of France"})
    assert retriever.calls == [("capital of France", 2)]
    assert out.splitlines() == ["[1] Paris (id=d1, score=3.000): Paris is the capital of France and a cit ...",
                                "[2] Berlin (id=d2, score=2.000): Berlin is the capital of Germany"]
    assert tool.run('{"query": "Seine", "k": 1}') == "[1] Rivers (id=d3, score=1.000): The Seine flows through Paris"
    assert tool.run({"query": "volcano"}) == "No results for 'volcano'."
    assert tool.run({"query": "x", "k": 0}).startswith(ERROR_PREFIX + "search: arguments fail the schema at k")
    with pytest.raises(TypeError, match="retriever must have a .search"):
        search_tool(object())
    with pytest.raises(ValueError, match="k must be an int"):
        search_tool(retriever, k=0)


def test_every_tool_has_the_openai_function_tool_shape():
    tools = default_tools(FakeRetriever(PASSAGES)).to_openai()
    assert [t["function"]["name"] for t in tools] == ["calculator", "python", "convert_units", "date_diff",
                                                      "weekday", "add_days", "search"]
    for adapter in (TypeAdapter(ChatCompletionToolParam), TypeAdapter(ChatCompletionFunctionToolParam)):
        for spec in tools:
            assert adapter.validate_python(spec) == spec
            assert set(spec) == {"type", "function"} and set(spec["function"]) == {"name", "description", "parameters"}
            json.dumps(spec)  # serialisable as the request body
        with pytest.raises(ValidationError):
            adapter.validate_python({"function": tools[0]["function"]})  # the check can fail: "type" is required


def test_python_tool_returns_output_and_stops_runaway_code():
    tool = python_tool(Limits(cpu_s=1, wall_s=1.0))
    assert tool.run({"code": "print(sum(range(10)))"}) == "45"
    assert tool.run({"code": "1 / 0"}).endswith("ZeroDivisionError: division by zero\n[exit code 1]")
    assert tool.run({"code": "import time\ntime.sleep(30)"}) == "[stopped: wall-clock timeout after 1 s]"
    assert tool.run({"code": "x = 1"}).startswith("(no output")


def test_tool_errors_become_observations():
    def explode(x):
        raise RuntimeError(f"boom {x}")

    registry = ToolRegistry([
        Tool("explode", "raises", {"type": "object", "properties": {"x": {"type": "integer"}}}, explode),
        Tool("hang", "never answers", {"type": "object"}, lambda: time.sleep(5) or "late", timeout_s=0.2),
        Tool("number", "returns an int", {"type": "object"}, lambda: 7),
    ])
    registry.register(default_tools()["calculator"])
    assert registry.call("explode", {"x": 1}) == "Error: explode: RuntimeError: boom 1"
    assert registry.call("hang") == "Error: hang: no answer within 0.2 s (timed out)"
    assert registry.call("number") == "Error: number: returned int, tools must return str"
    assert registry.call("missing", {}) == ("Error: unknown tool 'missing'; available tools: explode, hang, number, "
                                            "calculator")
    assert registry.call("explode", '{"x": ') == "Error: explode: arguments are not valid JSON: Expecting value at position 6"
    assert registry.call("explode", {"x": "one"}) == "Error: explode: arguments fail the schema at x: 'one' is not of type 'integer'"
    assert registry.call("explode", "[1]") == "Error: explode: arguments must be a JSON object, got list"
    assert registry.call("calculator", {"expression": "__import__('os')"}).startswith("Error: calculator: ValueError: expression: only calls")
    assert registry.call("calculator", '{"expression": "6 * 7"}') == "42"


TOOLS = default_tools()


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.sampled_from(["calculator", "convert_units", "date_diff", "weekday", "add_days", "nope"]),
       st.one_of(st.none(), st.text(max_size=30), st.integers(),
                 st.dictionaries(st.sampled_from(["expression", "value", "from_unit", "to_unit", "start", "end", "date",
                                                  "days", "x"]),
                                 st.one_of(st.text(max_size=12), st.integers(), st.floats(), st.none()), max_size=4)))
def test_no_model_output_can_raise_out_of_a_tool(name, arguments):
    out = TOOLS.call(name, arguments)
    assert isinstance(out, str) and out


def test_bad_tool_definitions_name_the_argument():
    with pytest.raises(ValueError, match="name must match"):
        Tool("my tool", "d", {"type": "object"}, lambda: "")
    with pytest.raises(ValueError, match="parameters must be a JSON Schema dict with type 'object'"):
        Tool("t", "d", {"type": "string"}, lambda: "")
    with pytest.raises(ValueError, match="parameters is not a valid JSON Schema"):
        Tool("t", "d", {"type": "object", "properties": {"x": {"type": "nonsense"}}}, lambda: "")
    with pytest.raises(TypeError, match="function must be callable"):
        Tool("t", "d", {"type": "object"}, "not a function")
    registry = ToolRegistry([Tool("t", "d", {"type": "object"}, lambda: "")])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Tool("t", "d", {"type": "object"}, lambda: ""))
