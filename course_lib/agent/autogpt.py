"""An AutoGPT-style loop: goal → plan → act → observe → critique, with memory and hard limits.

AutoGPT (Significant Gravitas, 2023, github.com/Significant-Gravitas/AutoGPT, ``autogpt/prompts``)
gives the model a goal, a list of commands and a reply format — one JSON object with
``thoughts`` (``text``, ``reasoning``, ``plan``, ``criticism``) and a ``command`` (``name``,
``args``) — then repeats "Determine which next command to use, and respond using the format
specified above", runs the command and stores the result in a vector memory. Its prompt lists a
``task_complete`` command (the model calls it when the goal is met), and outside continuous mode the
user authorises every step (``y`` / ``n``); the loop otherwise goes on as long as the model does not
call ``task_complete``. This one runs on its own and stops for a reason it names in ``Trace.stop_reason``:

- ``"final_answer"``: the model chose the ``finish`` command (AutoGPT's ``task_complete``);
- ``"max_steps"``: the hard iteration cap;
- ``"budget"``: the token budget (``ChatReply.usage`` summed) is spent;
- ``"repeat"``: the same command with the same arguments ``max_repeats`` times in a row (the
  classic AutoGPT failure: looping on one action).

Each step's text goes into :class:`~course_lib.agent.memory.AgentMemory`; the next prompt gets
the memories most relevant to the goal and the last observation (not the whole history), plus the
last observation itself. Replies that are not valid JSON are repaired when the fix is mechanical
(:func:`~course_lib.agent.jsonreply.parse_json_reply`), otherwise answered with an error observation.
"""

from __future__ import annotations

import json

from course_lib.agent.dispatch import ModelCalls, as_registry, check_limits, describe_tools, run_tool
from course_lib.agent.jsonreply import parse_json_reply
from course_lib.agent.memory import AgentMemory
from course_lib.agent.trace import Step, Trace
from course_lib.checks import check_positive_ints

FINISH = "finish"
AUTOGPT_PROMPT = """You are an autonomous agent. Your goal: {goal}
Work step by step, on your own. You have at most {max_steps} steps.

Commands:
{tools}
{finish}(answer: string): stop and give the final answer.

Reply with one JSON object and nothing else, in this format:
{{"thoughts": {{"text": "thought", "reasoning": "why", "plan": "- short bulleted list", "criticism": "constructive self-criticism"}}, "command": {{"name": "command name", "args": {{}}}}}}"""
TRIGGER = "Determine which next command to use, and respond using the format specified above:"


def read_command(reply: dict) -> tuple[str | None, dict | None, dict, str | None]:
    """``(name, args, thoughts, error)`` from a parsed AutoGPT reply."""
    thoughts = reply.get("thoughts") if isinstance(reply.get("thoughts"), dict) else {}
    command = reply.get("command")
    if not isinstance(command, dict) or not isinstance(command.get("name"), str):
        return None, None, thoughts, 'Error: the reply needs "command": {"name": ..., "args": {...}}.'
    args = command.get("args", {})
    if not isinstance(args, dict):
        return command["name"], None, thoughts, "Error: command args must be a JSON object."
    return command["name"], args, thoughts, None


class AutoGPTAgent:
    """Pursue ``goal`` with ``tools``; see the module docstring for the loop and its stop conditions."""

    def __init__(self, model, tools, memory: AgentMemory, *, max_steps: int = 6, token_budget: int | None = None,
                 max_tokens: int = 160, memories: int = 3, max_repeats: int = 3,
                 temperature: float = 0.0):
        if isinstance(memories, bool) or not isinstance(memories, int) or memories < 0:
            raise ValueError(f"memories must be a non-negative int, got {memories!r}")
        if not isinstance(memory, AgentMemory):
            raise TypeError(f"memory must be an AgentMemory, got {type(memory).__name__}")
        self.model, self.tools, self.memory = model, as_registry(tools), memory
        if FINISH in self.tools:
            raise ValueError(f"{FINISH!r} is the loop's own stop command; rename that tool")
        self.max_steps, self.token_budget, self.max_tokens = max_steps, token_budget, max_tokens
        self.memories, self.max_repeats = memories, max_repeats
        self.temperature = temperature
        check_limits(self)
        check_positive_ints(self, "max_repeats")

    def prompt(self, goal: str, last: str | None) -> list[dict]:
        """System message (goal, commands, format) and a user turn with relevant memories and the last result."""
        system = AUTOGPT_PROMPT.format(goal=goal, max_steps=self.max_steps, tools=describe_tools(self.tools),
                                       finish=FINISH)
        parts = []
        recalled = self.memory.relevant(goal if last is None else f"{goal}\n{last}", self.memories) if self.memories else []
        if recalled:
            parts.append("Relevant memories:\n" + "\n".join(f"- {text}" for text, _ in recalled))
        if last is not None:
            parts.append(f"Last result: {last}")
        return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts + [TRIGGER])}]

    def run(self, goal: str) -> Trace:
        if not isinstance(goal, str) or not goal.strip():
            raise ValueError(f"goal must be a non-empty string, got {goal!r}")
        trace, calls, last, history = Trace(goal), ModelCalls(self), None, []
        for index in range(1, self.max_steps + 1):
            messages = self.prompt(goal, last)
            turn = calls.chat(messages)
            if turn is None:
                trace.stop_reason = "budget"
                break
            reply = turn.reply
            step = Step(index, "error", start=turn.start, model_seconds=turn.model_seconds,
                        prompt_tokens=turn.prompt_tokens, completion_tokens=turn.completion_tokens)
            trace.messages = messages + [{"role": "assistant", "content": reply.content or ""}]
            trace.steps.append(step)
            obj, how = parse_json_reply(reply.content or "")
            name, args, thoughts, error = read_command(obj) if obj is not None else (None, None, {}, None)
            step.thought = " | ".join(str(thoughts[k]) for k in ("text", "plan", "criticism") if thoughts.get(k))
            if obj is None:  # keep the raw reply as the thought: the trace shows what the model wrote
                step.thought = (reply.content or "")[:200]
                step.action, step.observation = "(unreadable reply)", f"Error: your reply was {how}. Reply with one JSON object."
            elif error:
                step.action, step.observation = name or "(no command)", error
            elif name == FINISH:
                step.kind, step.action, step.arguments = "final", FINISH, args
                step.observation = str(args.get("answer", ""))
                trace.answer, trace.stop_reason = step.observation, "final_answer"
                break
            else:
                result = run_tool(self.tools, name, args)
                step.kind = "tool" if result.ok else "error"
                step.action, step.arguments, step.observation = name, args, result.observation
                step.tool_seconds = result.seconds
            if how == "repaired":
                step.observation += " (note: your JSON needed repair)"
            last = step.observation
            self.memory.add(f"step {index}: {step.action} {json.dumps(step.arguments)} -> {step.observation}",
                            step=index, goal=goal)
            history.append((step.action, json.dumps(step.arguments, sort_keys=True)))
            if len(history) >= self.max_repeats and len(set(history[-self.max_repeats:])) == 1:
                trace.steps.append(Step(index, "stop", action="stop",
                                        observation=f"same command {self.max_repeats} times in a row",
                                        start=calls.elapsed()))
                trace.stop_reason = "repeat"
                break
        else:
            trace.stop_reason = "max_steps"
        return trace


__all__ = ["AUTOGPT_PROMPT", "AutoGPTAgent", "FINISH", "TRIGGER", "read_command"]
