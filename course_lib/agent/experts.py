"""Scripted expert policies: they know a task's plan, run it through the real loop, and leave demonstrations.

Behaviour cloning needs demonstrations of the behaviour wanted (WebGPT, Nakano et al. 2021, §3.3:
human demonstrations in the browser's own command format). Here the "human" is a policy that knows
each task's plan (:mod:`course_lib.agent.tasks`): :class:`ExpertModel` speaks the :class:`ChatModel`
interface, reads the observations the loop sends back (so the values it uses came from the real
tools), and writes the next turn in the loop's own format:

- ``"react"``: ``Thought: ...`` / ``Action: ...`` / ``Action Input: {...}``, then ``Final Answer: ...``
  (:class:`~course_lib.agent.react.ReActAgent`);
- ``"function_calling"``: an assistant message with ``tool_calls``, then plain text
  (:class:`~course_lib.agent.function_calling.FunctionCallingAgent`; SmolLM2 sees the calls as
  ``{"tool": ..., "args": ...}``, :func:`course_lib.chat.to_template_messages`);
- ``"autogpt"``: the JSON reply ``{"thoughts": {...}, "command": {"name", "args"}}`` with ``finish``
  last (:class:`~course_lib.agent.autogpt.AutoGPTAgent`).

:func:`demonstrations` runs one task through the real loop with the expert and returns the chats a
model is trained on (the text SmolLM2's template renders): one chat per task for ReAct and function
calling, one per step for AutoGPT, whose every prompt is built afresh from memory.
"""

from __future__ import annotations

import json

from course_lib.agent.autogpt import FINISH, AutoGPTAgent
from course_lib.agent.function_calling import FunctionCallingAgent
from course_lib.agent.memory import AgentMemory
from course_lib.agent.react import ReActAgent
from course_lib.agent.tasks import Task, fill, is_correct, result_value
from course_lib.chat import ChatReply, ToolCall, to_template_messages

FORMATS = ("react", "function_calling", "autogpt")
THOUGHTS = {"calculator": "I use the calculator.", "convert_units": "I convert the units.",
            "add_days": "I add the days to the date.", "weekday": "I look up the weekday.",
            "date_diff": "I count the days between the dates.", "python": "I run the code in Python.",
            "search": "I search the docs."}
DONE = "I know the answer."


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    return fmt


def autogpt_reply(name: str, args: dict, text: str, step: int, steps: int) -> str:
    """The AutoGPT JSON reply (keys in the prompt's order; ``json.dumps`` spacing, as the grammar writes it)."""
    return json.dumps({"thoughts": {"text": text, "reasoning": f"step {step} of {steps}",
                                    "plan": "- use the tools\n- finish", "criticism": "none"},
                       "command": {"name": name, "args": args}})


class ExpertModel:
    """The expert policy of ``task`` in format ``fmt`` as a chat model; ``requests`` keeps (messages, reply text)."""

    def __init__(self, task: Task, fmt: str, name: str = "expert"):
        if not isinstance(task, Task):
            raise TypeError(f"task must be a tasks.Task, got {type(task).__name__}")
        self.task, self.fmt, self.name = task, _check_format(fmt), name
        self.requests: list[tuple[list[dict], str]] = []
        self._last: list[str] = []  # AutoGPT: the "Last result" of every prompt seen

    def observations(self, messages: list[dict]) -> list[str]:
        """The tool results the loop has sent back so far, in order."""
        if self.fmt == "react":
            return [m["content"].removeprefix("Observation: ") for m in messages[2:] if m["role"] == "user"]
        if self.fmt == "function_calling":
            return [m["content"] for m in messages if m["role"] == "tool"]
        for part in messages[-1]["content"].split("\n\n"):
            if part.startswith("Last result: "):
                self._last.append(part.removeprefix("Last result: "))
        return self._last

    def next_turn(self, messages: list[dict]) -> tuple[dict | None, str]:
        """``(call, thought)``: the plan's next call with its arguments filled, or ``(None, answer)`` at the end."""
        plan = self.task.plan
        seen = self.observations(messages)
        values = [result_value(step["tool"], obs) for step, obs in zip(plan, seen)]
        if len(seen) < len(plan):
            step = plan[len(seen)]
            return {"tool": step["tool"], "args": fill(step["args"], values)}, THOUGHTS[step["tool"]]
        return None, fill(self.task.answer, values)

    def chat(self, messages, *, tools=None, max_tokens=256, **kwargs) -> ChatReply:
        """The expert's reply in the loop's format (``tools``, ``max_tokens`` and sampling options are ignored)."""
        call, text = self.next_turn(messages)
        step = len(self.requests) + 1
        if self.fmt == "react":
            content = (f"Thought: {text}\nAction: {call['tool']}\nAction Input: {json.dumps(call['args'])}"
                       if call else f"Thought: {DONE}\nFinal Answer: {text}")
            reply = ChatReply(content)
        elif self.fmt == "function_calling":
            reply = (ChatReply("", (ToolCall(call["tool"], call["args"], f"call_{step}"),), "tool_calls")
                     if call else ChatReply(text))
            content = json.dumps({"tool": call["tool"], "args": call["args"]}) if call else text
        else:
            steps = len(self.task.plan) + 1
            content = (autogpt_reply(call["tool"], call["args"], text, step, steps) if call
                       else autogpt_reply(FINISH, {"answer": text}, DONE, step, steps))
            reply = ChatReply(content)
        self.requests.append(([dict(m) for m in messages], content))
        return reply

    def stream(self, messages, **kwargs):
        """The reply's text in one piece."""
        yield self.chat(messages, **kwargs).content


def make_agent(fmt: str, model, tools, memory: AgentMemory | None = None, **kwargs):
    """The chapter's loop for ``fmt`` around ``model`` (AutoGPT needs ``memory``); ``kwargs`` go to the loop."""
    if _check_format(fmt) == "react":
        return ReActAgent(model, tools, **kwargs)
    if fmt == "function_calling":
        return FunctionCallingAgent(model, tools, **kwargs)
    if memory is None:
        raise ValueError("the autogpt loop needs memory=AgentMemory(...)")
    return AutoGPTAgent(model, tools, memory, **kwargs)


def demonstrations(task: Task, fmt: str, tools, memory: AgentMemory | None = None) -> list[list[dict]]:
    """The chats to clone from the expert's run of ``task`` in ``fmt`` (template messages: what SmolLM2 reads).

    ``RuntimeError`` if the expert's run does not end with the right answer (a broken plan or tool).
    """
    expert = ExpertModel(task, fmt)
    trace = make_agent(fmt, expert, tools, memory, max_steps=len(task.plan) + 1).run(task.question)
    if not is_correct(task, trace.answer):
        raise RuntimeError(f"the expert failed task {task.id} ({fmt}): {trace.stop_reason}, answer {trace.answer!r}")
    if fmt == "react":
        return [trace.messages]
    if fmt == "function_calling":
        return [to_template_messages(trace.messages, tools.to_openai())]
    return [messages + [{"role": "assistant", "content": content}] for messages, content in expert.requests]


__all__ = ["DONE", "FORMATS", "THOUGHTS", "ExpertModel", "autogpt_reply", "demonstrations", "make_agent"]
