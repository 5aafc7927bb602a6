"""Dispatching a model's tool call for an agent loop: a registry call, timed, its output capped.

Every loop in the chapter dispatches through :func:`run_tool`. The checks themselves live in
:class:`course_lib.agent.tools.ToolRegistry` / :meth:`Tool.run <course_lib.agent.tools.Tool.run>`:
an unknown tool name, arguments that fail the tool's JSON Schema, a tool that raises or one that
does not answer in its ``timeout_s`` all come back as an observation starting with ``"Error: "``.
The run goes on: an agent recovers from its own mistakes only if it is told about them (Yao et al.
2023, ReAct §3; OpenAI's function-calling guide sends errors back as the ``role: tool`` content).
This module adds what a loop needs around that: the time the call took, whether it failed, and a
cap on the observation's length (a model's context is finite).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from course_lib.agent.tools import ERROR_PREFIX, Tool, ToolRegistry
from course_lib.checks import check_positive_ints

MAX_OBSERVATION = 2000  # characters of tool output the model sees; the rest is cut


@dataclass(frozen=True)
class ToolResult:
    """What one dispatched tool call gave back: the observation, whether it succeeded, and its wall time."""
    observation: str   # what the model sees
    ok: bool           # False when the call failed (unknown tool, bad arguments, error, timeout)
    seconds: float     # wall time spent dispatching


def as_registry(tools) -> ToolRegistry:
    """A :class:`ToolRegistry` from a registry, a list of :class:`Tool` or a ``{name: Tool}`` mapping."""
    if isinstance(tools, ToolRegistry):
        return tools
    if isinstance(tools, dict):
        tools = list(tools.values())
    if isinstance(tools, (str, bytes)) or not isinstance(tools, Iterable):
        raise TypeError(f"tools must be a ToolRegistry, a list of Tool or a {{name: Tool}} dict, got {type(tools).__name__}")
    tools = list(tools)
    if not tools:
        raise ValueError("tools must hold at least one Tool")
    return ToolRegistry(tools)  # TypeError names any element that is not a Tool


def signature(tool: Tool) -> str:
    """``name(arg: type, optional?: type)`` from the tool's JSON Schema (required arguments first)."""
    props, required = tool.parameters.get("properties", {}), tool.parameters.get("required", [])
    args = [f"{k}{'' if k in required else '?'}: {v.get('type', 'any')}" for k, v in props.items()]
    return f"{tool.name}({', '.join(args)})"


def describe_tools(tools: ToolRegistry) -> str:
    """One line per tool, ``name(arg: type, ...): description``: short, so a small model's prompt stays short."""
    return "\n".join(f"{signature(t)}: {t.description}" for t in tools)


def run_tool(tools: ToolRegistry, name: str, arguments, max_chars: int = MAX_OBSERVATION) -> ToolResult:
    """Dispatch one call through the registry; never raises for the model's or the tool's mistakes."""
    start = time.perf_counter()
    text = tools.call(name, arguments)
    if len(text) > max_chars:
        text = text[:max_chars] + f"... [cut {len(text) - max_chars} characters]"
    return ToolResult(text, not text.startswith(ERROR_PREFIX), time.perf_counter() - start)


def check_limits(agent) -> None:
    """``ValueError`` unless the loop's ``max_steps`` and ``max_tokens`` (and ``token_budget`` if set) are positive ints."""
    check_positive_ints(agent, "max_steps", "max_tokens", *(() if agent.token_budget is None else ("token_budget",)))


def next_max_tokens(agent, used: int) -> int | None:
    """``max_tokens`` for the next model call: capped by what is left of the budget; ``None`` when it is spent."""
    if agent.token_budget is None:
        return agent.max_tokens
    left = agent.token_budget - used
    return min(agent.max_tokens, left) if left > 0 else None


def usage_tokens(reply) -> tuple[int, int, int]:
    """``(prompt, completion, total)`` tokens from ``ChatReply.usage`` (zeros when a backend reports none)."""
    usage = reply.usage or {}
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    return prompt, completion, usage.get("total_tokens", prompt + completion)


@dataclass(frozen=True)
class ModelTurn:
    """One model call of an agent loop: the reply, its timing and its tokens (the :class:`Step` field names)."""
    reply: object           # the ChatReply
    start: float            # seconds since the run started
    model_seconds: float    # time inside ChatModel.chat
    prompt_tokens: int
    completion_tokens: int


class ModelCalls:
    """The head of every agent loop: ``agent.model.chat`` within the token budget, timed from the run's start.

    ``chat(messages, **kwargs)`` passes ``max_tokens`` (:func:`next_max_tokens`) and ``agent.temperature``
    and returns a :class:`ModelTurn`, or ``None`` once ``agent.token_budget`` is spent (the loop then
    stops with ``stop_reason = "budget"``). ``elapsed()``: seconds since the run started.
    """

    def __init__(self, agent):
        self.agent, self.used, self.t0 = agent, 0, time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since this run started."""
        return time.perf_counter() - self.t0

    def chat(self, messages: list[dict], **kwargs) -> ModelTurn | None:
        """One model call counted against the budget, or ``None`` when nothing of the budget is left."""
        max_tokens = next_max_tokens(self.agent, self.used)
        if max_tokens is None:
            return None
        start = self.elapsed()
        reply = self.agent.model.chat(messages, max_tokens=max_tokens, temperature=self.agent.temperature, **kwargs)
        model_seconds = self.elapsed() - start
        prompt_tokens, completion_tokens, total = usage_tokens(reply)
        self.used += total
        return ModelTurn(reply, start, model_seconds, prompt_tokens, completion_tokens)


__all__ = ["MAX_OBSERVATION", "ModelCalls", "ModelTurn", "Tool", "ToolResult", "as_registry", "check_limits",
           "describe_tools", "next_max_tokens", "signature", "run_tool", "usage_tokens"]
