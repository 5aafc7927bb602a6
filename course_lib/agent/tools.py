"""Tools an agent can call: a ``Tool`` (name, description, JSON Schema, function) and a registry.

A tool's parameters are a JSON Schema object, and ``Tool.to_openai()`` gives the OpenAI
function-calling form ``{"type": "function", "function": {"name", "description", "parameters"}}``
that an OpenAI-compatible endpoint accepts in ``tools=[...]``.

Tools always answer with a string, the observation the model reads next. Nothing a model can send
ends the agent's run: an unknown tool, arguments that are not JSON or fail the schema, a tool that
raises or that does not answer within ``timeout_s`` all come back as an observation starting with
``ERROR_PREFIX``. (An in-process tool that hangs is abandoned in its daemon thread; the ``python``
tool's code runs in ``sandbox.run_python``, whose timeout really kills it.)
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from course_lib.agent import everyday
from course_lib.agent.calculator import safe_eval
from course_lib.agent.sandbox import Limits, run_python

ERROR_PREFIX = "Error: "
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # OpenAI's rule for function names


def error(message: str) -> str:
    """An error observation (what the model reads instead of a result)."""
    return ERROR_PREFIX + message


def parse_arguments(arguments: str | dict | None) -> dict:
    """Tool-call arguments as a dict: a JSON object string (OpenAI's ``arguments``), a dict, or None."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as e:
            raise ValueError(f"arguments are not valid JSON: {e.msg} at position {e.pos}") from None
    if not isinstance(arguments, dict):
        raise TypeError(f"arguments must be a JSON object, got {type(arguments).__name__}")
    return arguments


@dataclass(frozen=True)
class Tool:
    """One callable tool. ``function(**arguments)`` must return a str."""

    name: str
    description: str
    parameters: dict            # JSON Schema of the arguments object
    function: Callable[..., str]
    timeout_s: float = 10.0     # an answer later than this becomes an error observation

    def __post_init__(self):
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            raise ValueError(f"name must match {NAME_PATTERN.pattern} (OpenAI function names), got {self.name!r}")
        if not isinstance(self.description, str) or not self.description:
            raise ValueError(f"description must be a non-empty str, got {self.description!r}")
        if not isinstance(self.parameters, dict) or self.parameters.get("type") != "object":
            raise ValueError(f"parameters must be a JSON Schema dict with type 'object', got {self.parameters!r}")
        try:
            Draft202012Validator.check_schema(self.parameters)
        except SchemaError as e:
            raise ValueError(f"parameters is not a valid JSON Schema: {e.message}") from None
        if not callable(self.function):
            raise TypeError(f"function must be callable, got {type(self.function).__name__}")
        object.__setattr__(self, "_validator", Draft202012Validator(self.parameters))

    def to_openai(self) -> dict:
        """The tool in OpenAI's function-calling form (``ChatCompletionFunctionToolParam``)."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    def check(self, arguments: str | dict | None) -> dict:
        """The arguments as a dict if they are JSON and satisfy the schema; ``ValueError`` says where they fail."""
        args = parse_arguments(arguments)
        problem = best_match(self._validator.iter_errors(args))
        if problem is not None:
            where = "/".join(map(str, problem.absolute_path)) or "the arguments object"
            raise ValueError(f"arguments fail the schema at {where}: {problem.message}")
        return args

    def run(self, arguments: str | dict | None) -> str:
        """The observation for one call: the tool's answer, or an error string; never raises."""
        try:
            args = self.check(arguments)
        except (ValueError, TypeError) as e:
            return error(f"{self.name}: {e}")
        box: dict = {}

        def target():
            try:
                box["value"] = self.function(**args)
            except BaseException as e:  # any failure becomes an observation
                box["error"] = e

        worker = threading.Thread(target=target, name=f"tool-{self.name}", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            return error(f"{self.name}: no answer within {self.timeout_s:g} s (timed out)")
        if "error" in box:
            e = box["error"]
            return error(f"{self.name}: {type(e).__name__}: {e}")
        if not isinstance(box["value"], str):
            return error(f"{self.name}: returned {type(box['value']).__name__}, tools must return str")
        return box["value"]


class ToolRegistry:
    """Tools by name; ``call(name, arguments)`` dispatches and always returns an observation string."""

    def __init__(self, tools: Iterable[Tool] = ()):
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> Tool:
        if not isinstance(tool, Tool):
            raise TypeError(f"tool must be a Tool, got {type(tool).__name__}")
        if tool.name in self._tools:
            raise ValueError(f"tool name {tool.name!r} is already registered")
        self._tools[tool.name] = tool
        return tool

    def __getitem__(self, name: str) -> Tool:
        if name not in self._tools:
            raise KeyError(f"unknown tool {name!r}; registered: {', '.join(self._tools)}")
        return self._tools[name]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self):
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def to_openai(self) -> list[dict]:
        """Every tool in OpenAI's ``tools=[...]`` form."""
        return [tool.to_openai() for tool in self]

    def call(self, name: str, arguments: str | dict | None = None) -> str:
        """Run tool ``name``; an unknown name is an error observation, like every other failure."""
        if name not in self._tools:
            return error(f"unknown tool {name!r}; available tools: {', '.join(self._tools)}")
        return self._tools[name].run(arguments)


def _object(properties: dict, required: Iterable[str]) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


def calculator_tool() -> Tool:
    """``calculator(expression)``: arithmetic via ``calculator.safe_eval`` (no ``eval``)."""
    return Tool("calculator", "Evaluate an arithmetic expression, e.g. '2 * (3 + 4) ** 2 / sqrt(16)'. "
                "Numbers, + - * / // % **, parentheses, pi, e, and sqrt, log, exp, sin, cos, min, max, round.",
                _object({"expression": {"type": "string", "description": "the arithmetic expression"}}, ["expression"]),
                lambda expression: str(safe_eval(expression)))


def format_run(result) -> str:
    """A ``SandboxResult`` as the model sees it: stdout, then stderr and how the run ended if it matters."""
    parts = [result.stdout.rstrip("\n")] if result.stdout else []
    if result.stderr:
        parts.append("stderr:\n" + result.stderr.rstrip("\n"))
    if result.killed_reason:
        parts.append(f"[stopped: {result.killed_reason}]")
    elif result.exit_code:
        parts.append(f"[exit code {result.exit_code}]")
    return "\n".join(parts) or "(no output; print() what you want to see)"


def python_tool(limits: Limits | None = None) -> Tool:
    """``python(code)``: run the code in the sandbox (a separate, limited process) and return its output."""
    limits = limits or Limits()
    return Tool("python", "Run Python 3 code in a sandbox (no network, no files kept, "
                f"{limits.wall_s:g} s limit) and return what it prints. Use print() to see results.",
                _object({"code": {"type": "string", "description": "a Python program"}}, ["code"]),
                lambda code: format_run(run_python(code, limits)), timeout_s=limits.wall_s + 10)


def convert_units_tool() -> Tool:
    """``convert_units(value, from_unit, to_unit)`` over ``everyday.UNITS`` and temperatures."""
    units = ", ".join([*everyday.UNITS, *everyday.TEMPERATURE])

    def convert(value, from_unit, to_unit):
        return f"{value:g} {from_unit} = {everyday.convert_units(value, from_unit, to_unit):.10g} {to_unit}"

    unit = {"type": "string", "description": f"one of {units} (or its English name)"}
    return Tool("convert_units", "Convert a length, mass, time or temperature between units.",
                _object({"value": {"type": "number"}, "from_unit": unit, "to_unit": unit},
                        ["value", "from_unit", "to_unit"]), convert)


def date_tools() -> list[Tool]:
    """``date_diff(start, end)``, ``weekday(date)`` and ``add_days(date, days)`` over ISO dates."""
    iso = {"type": "string", "description": "a date YYYY-MM-DD"}
    return [
        Tool("date_diff", "Number of days from start to end (negative if end is earlier).",
             _object({"start": iso, "end": iso}, ["start", "end"]),
             lambda start, end: f"{everyday.date_diff(start, end)} days"),
        Tool("weekday", "The day of the week of a date.", _object({"date": iso}, ["date"]),
             lambda date: everyday.weekday(date)),
        Tool("add_days", "The date a number of days after (or before, if negative) a date.",
             _object({"date": iso, "days": {"type": "integer"}}, ["date", "days"]),
             lambda date, days: everyday.add_days(date, days)),
    ]


def search_tool(retriever, k: int = 3, max_chars: int = 300, name: str = "search") -> Tool:
    """``search(query, k)`` over any ``retriever`` with ``.search(query, k)`` returning passages that have
    ``.id``, ``.title``, ``.text`` and ``.score`` (e.g. ``course_lib.rag``'s retrievers)."""
    if not callable(getattr(retriever, "search", None)):
        raise TypeError(f"retriever must have a .search(query, k) method, got {type(retriever).__name__}")
    if not isinstance(k, int) or not 1 <= k <= 20:
        raise ValueError(f"k must be an int in [1, 20], got {k!r}")

    def search(query, k=k):
        passages = list(retriever.search(query, k))
        if not passages:
            return f"No results for {query!r}."
        lines = []
        for i, p in enumerate(passages, 1):
            text = " ".join(str(p.text).split())
            text = text if len(text) <= max_chars else text[:max_chars].rstrip() + " ..."
            lines.append(f"[{i}] {p.title} (id={p.id}, score={float(p.score):.3f}): {text}")
        return "\n".join(lines)

    return Tool(name, "Search the course's document collection; returns the best passages with their ids.",
                _object({"query": {"type": "string", "minLength": 1},
                         "k": {"type": "integer", "minimum": 1, "maximum": 20, "default": k}}, ["query"]), search)


def default_tools(retriever=None, limits: Limits | None = None) -> ToolRegistry:
    """The chapter's tool set: calculator, python, convert_units, the date tools, and search if given a retriever."""
    tools = [calculator_tool(), python_tool(limits), convert_units_tool(), *date_tools()]
    return ToolRegistry(tools + ([search_tool(retriever)] if retriever is not None else []))
