"""OpenAI-style function calling: tools as JSON Schema, ``tool_calls``, ``role: tool`` replies.

The protocol of OpenAI's Chat Completions API ("Function calling" guide,
https://platform.openai.com/docs/guides/function-calling), which vLLM, llama.cpp's server and the
course's chapter-13 server speak too:

1. the request lists ``tools=[{"type": "function", "function": {name, description, parameters}}]``,
   ``parameters`` being a JSON Schema object;
2. the model answers with an assistant message whose ``tool_calls`` each carry an ``id``, a
   function ``name`` and ``arguments`` (a JSON string);
3. the application runs each call and appends one ``{"role": "tool", "tool_call_id": id,
   "content": result}`` message per call; the model is called again;
4. a reply without ``tool_calls`` is the answer.

The model's arguments are validated against the tool's schema before the tool runs (the API does
not guarantee them unless "strict" structured outputs are on); every failure is sent back as the
tool message's content. A small local model sometimes writes a broken call as plain text: that is
answered with an error message too, instead of being taken for the final answer.
"""

from __future__ import annotations

import json

from course_lib.agent.dispatch import ModelCalls, as_registry, check_limits, run_tool
from course_lib.agent.trace import Step, Trace


def failed_call_reason(text: str, names) -> str | None:
    """Why ``text`` looks like a tool call that did not parse (``None`` when it looks like an answer)."""
    stripped = (text or "").strip().strip("`").removeprefix("json").strip()
    if not stripped.startswith("{") and '"tool"' not in stripped:
        return None
    try:
        obj = json.loads(stripped)
    except json.JSONDecodeError as exc:
        return f"your tool call is not valid JSON ({exc.msg})"
    if not isinstance(obj, dict) or "tool" not in obj:
        return 'a tool call is one JSON object {"tool": <name>, "args": {...}}'
    if obj["tool"] not in names:
        return f"unknown tool {obj['tool']!r}; available tools: {', '.join(names)}"
    return 'the call needs "args" as a JSON object'


class FunctionCallingAgent:
    """Call ``model`` with the tools until it answers without tool calls, at most ``max_steps`` times."""

    def __init__(self, model, tools, *, system: str | None = None, max_steps: int = 5,
                 token_budget: int | None = None, max_tokens: int = 128,
                 temperature: float = 0.0):
        self.model, self.tools, self.system = model, as_registry(tools), system
        self.max_steps, self.token_budget, self.max_tokens = max_steps, token_budget, max_tokens
        self.temperature = temperature
        check_limits(self)

    def start(self, task: str | list[dict]) -> list[dict]:
        """The opening messages: optional system message, then the user's task."""
        if isinstance(task, list):
            return [dict(m) for m in task]
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f"task must be a non-empty string or a list of messages, got {task!r}")
        return ([{"role": "system", "content": self.system}] if self.system else []) + [{"role": "user", "content": task}]

    def run(self, task: str | list[dict]) -> Trace:
        messages = self.start(task)
        schemas = self.tools.to_openai()
        trace = Trace(task if isinstance(task, str) else messages[-1].get("content") or "", messages=messages)
        calls = ModelCalls(self)
        for index in range(1, self.max_steps + 1):
            turn = calls.chat(messages, tools=schemas)
            if turn is None:
                trace.stop_reason = "budget"
                break
            reply = turn.reply
            tokens = {"prompt_tokens": turn.prompt_tokens, "completion_tokens": turn.completion_tokens}
            timing = {"index": index, "start": turn.start, "model_seconds": turn.model_seconds}
            if reply.tool_calls:
                messages.append(reply.message())
                for n, call in enumerate(reply.tool_calls):
                    result = run_tool(self.tools, call.name, call.arguments)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result.observation})
                    trace.steps.append(Step(kind="tool" if result.ok else "error", thought=reply.content or "",
                                            action=call.name, arguments=call.arguments, observation=result.observation,
                                            tool_seconds=result.seconds, **timing, **(tokens if n == 0 else {})))
                    timing["model_seconds"] = 0.0  # one model call, shared by its parallel tool calls
                continue
            reason = failed_call_reason(reply.content, self.tools.names)
            messages.append({"role": "assistant", "content": reply.content or ""})
            if reason is not None:
                error = f"Error: {reason}. Call a tool with valid JSON, or answer in plain text."
                messages.append({"role": "user", "content": error})
                trace.steps.append(Step(kind="error", thought=reply.content, action="(invalid tool call)",
                                        observation=error, **timing, **tokens))
                continue
            trace.steps.append(Step(kind="final", action="answer", observation=reply.content, **timing, **tokens))
            trace.answer, trace.stop_reason = reply.content, "final_answer"
            break
        else:
            trace.stop_reason = "max_steps"
        return trace


__all__ = ["FunctionCallingAgent", "failed_call_reason"]
