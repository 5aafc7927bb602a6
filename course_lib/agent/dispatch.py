"""Calling a tool for an agent: look it up, validate its arguments, run it with a time limit.

Every loop in the chapter dispatches through :func:`run_tool`, and whatever goes wrong — an
unknown tool name, arguments that fail the tool's JSON Schema, a tool that raises, a tool that
hangs — comes back as an observation string the model reads on its next turn. The run goes on:
an agent recovers from its own mistakes only if it is told about them (Yao et al. 2023, ReAct §3;
OpenAI's function-calling guide sends errors back as the ``role: tool`` message's content).

A *tool* is any object with ``name``, ``description``, ``parameters`` (a JSON Schema object) and
``function`` (the Python callable), like :class:`course_lib.agent.tools.Tool`; ``tools`` may be a
list of them, a ``{name: tool}`` mapping or a registry holding them in ``.tools``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MAX_OBSERVATION = 2000  # characters of tool output the model sees; the rest is cut (context is finite)


@dataclass(frozen=True)
class ToolResult:
    observation: str   # what the model sees
    ok: bool           # False when the call failed (unknown tool, bad arguments, error, timeout)
    seconds: float     # wall time spent dispatching


def tool_map(tools) -> dict:
    """``{name: tool}`` from a list of tools, a mapping, or a registry with a ``.tools`` attribute."""
    if hasattr(tools, "tools") and not isinstance(tools, Mapping):
        tools = tools.tools
    if isinstance(tools, Mapping):
        tools = list(tools.values())
    if not isinstance(tools, Iterable) or isinstance(tools, (str, bytes)):
        raise TypeError(f"tools must be a list of tools, a {{name: tool}} mapping or a registry, got {type(tools).__name__}")
    out = {}
    for t in tools:
        if not all(hasattr(t, a) for a in ("name", "description", "parameters", "function")):
            raise TypeError(f"a tool needs name, description, parameters and function attributes, got {t!r}")
        out[t.name] = t
    return out


def openai_tools(tools) -> list[dict]:
    """The tools in OpenAI's format: ``{"type": "function", "function": {name, description, parameters}}``."""
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in tool_map(tools).values()]


def describe_tools(tools) -> str:
    """One line per tool: ``name: description Arguments: <JSON Schema properties>`` (for text prompts)."""
    return "\n".join(f"{t.name}: {t.description} Arguments: {json.dumps(t.parameters.get('properties', {}))}"
                     for t in tool_map(tools).values())


def argument_errors(schema: dict, arguments) -> list[str]:
    """Why ``arguments`` fail ``schema`` (empty when they pass), one readable line per problem."""
    import jsonschema

    if not isinstance(arguments, dict):
        return [f"arguments must be a JSON object, got {type(arguments).__name__}"]
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or 'arguments'}: {e.message}"
            for e in sorted(validator.iter_errors(arguments), key=lambda e: list(map(str, e.path)))]


def _format(value) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return repr(value)


def call_with_timeout(function, arguments: dict, timeout: float):
    """``function(**arguments)`` in a daemon thread; raises ``TimeoutError`` after ``timeout`` seconds.

    A thread cannot be killed: a hung tool keeps running in the background, only the agent stops
    waiting. Code that may loop for ever belongs in the sandbox (:mod:`course_lib.agent.sandbox`),
    whose separate process *is* killed.
    """
    box: dict = {}

    def target():
        try:
            box["value"] = function(**arguments)
        except BaseException as exc:  # noqa: BLE001 - every failure becomes an observation
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no result after {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def run_tool(tools, name, arguments, timeout: float = 10.0, max_chars: int = MAX_OBSERVATION) -> ToolResult:
    """Dispatch one call; never raises for the model's or the tool's mistakes."""
    start = time.perf_counter()

    def done(text: str, ok: bool) -> ToolResult:
        if len(text) > max_chars:
            text = text[:max_chars] + f"... [cut {len(text) - max_chars} characters]"
        return ToolResult(text, ok, time.perf_counter() - start)

    known = tool_map(tools)
    if name not in known:
        return done(f"Error: unknown tool {name!r}. Available tools: {', '.join(known)}.", False)
    tool = known[name]
    errors = argument_errors(tool.parameters, arguments)
    if errors:
        return done(f"Error: invalid arguments for {name}: " + "; ".join(errors), False)
    try:
        value = call_with_timeout(tool.function, arguments, timeout)
    except TimeoutError as exc:
        return done(f"Error: tool {name} timed out ({exc}).", False)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the model should read what went wrong
        return done(f"Error: tool {name} failed: {type(exc).__name__}: {exc}", False)
    return done(_format(value), True)


__all__ = ["MAX_OBSERVATION", "ToolResult", "argument_errors", "call_with_timeout", "describe_tools",
           "openai_tools", "run_tool", "tool_map"]
