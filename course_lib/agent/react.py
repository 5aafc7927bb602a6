"""ReAct: interleave reasoning ("Thought") and acting ("Action") with a tool's "Observation".

Yao et al. 2023, "ReAct: Synergizing Reasoning and Acting in Language Models" (ICLR 2023), §2: the
model's action space is extended with language (thoughts); a trajectory is
``Thought → Action → Observation → Thought → … → Final Answer``. We use the text format LangChain
made common (``Thought:`` / ``Action:`` / ``Action Input:`` / ``Observation:`` / ``Final Answer:``),
with the tool's arguments as a JSON object, so it works with any chat model, even one without
native tool calling, like our SmolLM2.

The loop is defensive, because a model's text is untrusted input:

- the parser never raises; an unusable reply becomes an observation explaining the format;
- the model is stopped at ``Observation:`` (it must not invent the tool's result), and anything it
  wrote after that label is dropped;
- a step cap (``max_steps``) and a token budget (the sum of ``ChatReply.usage`` over the run) end
  runs that do not converge;
- tool dispatch goes through :func:`course_lib.agent.dispatch.run_tool` (unknown tool, bad
  arguments, exceptions and time-outs come back as observations).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from course_lib.agent.dispatch import ModelCalls, as_registry, check_limits, describe_tools, run_tool
from course_lib.agent.jsonreply import find_json_object
from course_lib.agent.trace import Step, Trace

REACT_PROMPT = """Answer the question as well as you can. You can use these tools:
{tools}

Use exactly this format:
Thought: what to do next
Action: one tool name from [{names}]
Action Input: the tool's arguments as a JSON object
Observation: the tool's result (it is written for you; never write it yourself)
... (Thought / Action / Action Input / Observation can repeat)
Thought: I know the answer
Final Answer: the answer to the question"""

FORMAT_HELP = ("Error: your reply had neither an Action nor a Final Answer. Reply with "
               "'Thought: ...' then either 'Action: <tool>' and 'Action Input: {...}', or 'Final Answer: ...'.")

# a label at the start of a line; tolerate Markdown bold and the paper's numbering ("Thought 2:")
_LABEL = re.compile(r"^[ \t*]*(thought|action input|action|observation|final answer)(?:[ \t]*\d+)?[ \t*]*:[ \t*]*",
                    re.I | re.M)


@dataclass(frozen=True)
class ReActParse:
    """One ReAct reply split into its labels (Yao et al. 2023, §2): Thought, Action, Action Input, Final Answer."""
    thought: str = ""
    action: str | None = None          # the tool's name as written
    action_input: str | None = None    # the raw text after "Action Input:"
    final_answer: str | None = None


def parse_react(text: str) -> ReActParse:
    """Read one ReAct reply. Never raises; text before the first label counts as the thought.

    Everything from the first ``Observation:`` on is ignored (the model invented it). If both an
    action and a final answer appear, the one written first wins.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    fields: dict[str, str] = {}
    matches = list(_LABEL.finditer(text))
    thought = text[:matches[0].start()] if matches else text
    order = []
    for m, nxt in zip(matches, matches[1:] + [None]):
        label = m.group(1).lower()
        if label == "observation":
            break
        value = text[m.end():nxt.start() if nxt else len(text)].strip()
        if label not in fields:
            fields[label], order = value, order + [label]
    thought = (fields.get("thought") or thought).strip()
    action = fields.get("action", "").strip().strip("`'\"").strip() or None
    final = fields.get("final answer")
    if action is not None and final is not None:
        if order.index("action") < order.index("final answer"):
            final = None
        else:
            action = None
    return ReActParse(thought, action, fields.get("action input") if action else None, final)


def arguments_from_text(text: str | None, schema: dict | None) -> tuple[dict | None, str | None]:
    """``(arguments, error)`` from an ``Action Input`` text.

    A JSON object is used as is; an empty input means no arguments; a bare value (``2 + 3`` or
    ``"Paris"``) is accepted when the tool takes exactly one argument, as the original ReAct
    prompts passed strings. Anything else is an error message for the model.
    """
    text = (text or "").strip().strip("`").strip()
    if not text:
        return {}, None
    obj = find_json_object(text)
    if obj is not None:
        return obj, None
    properties = list((schema or {}).get("properties", {}))
    if len(properties) == 1:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text.splitlines()[0].strip()
        return {properties[0]: value}, None
    return None, f"Error: Action Input must be a JSON object with the tool's arguments, got {text[:200]!r}."


class ReActAgent:
    """Run the ReAct loop with a :class:`course_lib.chat.ChatModel` and a set of tools.

    ``max_steps`` bounds model calls; ``token_budget`` (prompt + completion tokens summed over the
    run, from ``ChatReply.usage``) stops the loop before a call once spent and caps each call's
    ``max_tokens`` at what is left.
    """

    def __init__(self, model, tools, *, max_steps: int = 5, token_budget: int | None = None,
                 max_tokens: int = 128, examples: str = "", temperature: float = 0.0):
        self.model, self.tools = model, as_registry(tools)
        self.max_steps, self.token_budget, self.max_tokens = max_steps, token_budget, max_tokens
        self.examples, self.temperature = examples, temperature
        check_limits(self)

    def system_prompt(self) -> str:
        prompt = REACT_PROMPT.format(tools=describe_tools(self.tools), names=", ".join(self.tools.names))
        return prompt + (f"\n\nExample:\n{self.examples.strip()}" if self.examples else "")

    def step(self, reply_text: str) -> tuple[Step, bool]:
        """Turn one reply into a :class:`Step` (dispatching its tool); ``True`` when it is the final answer."""
        parsed = parse_react(reply_text)
        if parsed.action is None and parsed.final_answer is not None:
            answer = parsed.final_answer.strip()
            return Step(0, "final", parsed.thought, "Final Answer", None, answer), True
        if parsed.action is None:
            return Step(0, "error", parsed.thought, "(no action)", None, FORMAT_HELP), False
        tool = self.tools[parsed.action] if parsed.action in self.tools else None
        arguments, error = arguments_from_text(parsed.action_input, tool.parameters if tool else None)
        if error:
            return Step(0, "error", parsed.thought, parsed.action, None, error), False
        result = run_tool(self.tools, parsed.action, arguments)
        return Step(0, "tool" if result.ok else "error", parsed.thought, parsed.action, arguments,
                    result.observation, tool_seconds=result.seconds), False

    def run(self, question: str) -> Trace:
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"question must be a non-empty string, got {question!r}")
        messages = [{"role": "system", "content": self.system_prompt()},
                    {"role": "user", "content": f"Question: {question}"}]
        trace, calls = Trace(question, messages=messages), ModelCalls(self)
        for index in range(1, self.max_steps + 1):
            turn = calls.chat(messages, stop=["Observation:"])
            if turn is None:
                trace.stop_reason = "budget"
                break
            text = turn.reply.content or ""
            cut = re.search(r"^[ \t*]*observation[ \t]*\d*[ \t*]*:", text, re.I | re.M)  # an invented observation
            text = (text[:cut.start()] if cut else text).strip()
            step, final = self.step(text)
            step.index, step.start, step.model_seconds = index, turn.start, turn.model_seconds
            step.prompt_tokens, step.completion_tokens = turn.prompt_tokens, turn.completion_tokens
            trace.steps.append(step)
            messages.append({"role": "assistant", "content": text or "(empty reply)"})
            if final:
                trace.answer, trace.stop_reason = step.observation, "final_answer"
                break
            messages.append({"role": "user", "content": f"Observation: {step.observation}"})
        else:
            trace.stop_reason = "max_steps"
        return trace


__all__ = ["FORMAT_HELP", "REACT_PROMPT", "ReActAgent", "ReActParse", "arguments_from_text", "parse_react"]
