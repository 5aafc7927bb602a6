"""What an agent did, step by step: thought, action, observation, tokens and time.

Every loop of the chapter (:mod:`~course_lib.agent.react`, :mod:`~course_lib.agent.function_calling`,
:mod:`~course_lib.agent.autogpt`) returns a :class:`Trace`. A trace is the ReAct paper's
trajectory (Yao et al. 2023, "ReAct: Synergizing Reasoning and Acting in Language Models", §2:
thought → action → observation, repeated) plus what an engineer needs to debug it: the tokens each
model call used (from ``ChatReply.usage``) and the seconds spent in the model and in the tool.

Views: :meth:`Trace.rows` (plain dicts), :meth:`Trace.to_html` (a table without any plotting
library); the plotly table and timeline live in :mod:`course_lib.viz.agent_trace`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field

STEP_KINDS = ("tool", "final", "error", "stop")  # tool call; final answer; unusable reply; loop stopped


@dataclass
class Step:
    """One step of a trajectory (ReAct §2: thought → action → observation) with its tokens and seconds."""
    index: int                      # 1-based step number
    kind: str                       # one of STEP_KINDS
    thought: str = ""               # the model's reasoning text (ReAct "Thought", AutoGPT "thoughts")
    action: str = ""                # tool name, "Final Answer", or what went wrong
    arguments: dict | None = None   # the tool's arguments as parsed (None when there were none)
    observation: str = ""           # what the model sees next: tool output, error message or answer
    prompt_tokens: int = 0
    completion_tokens: int = 0
    start: float = 0.0              # seconds since the run started
    model_seconds: float = 0.0      # time inside ChatModel.chat
    tool_seconds: float = 0.0       # time inside the tool (0 when no tool ran)

    def __post_init__(self):
        if self.kind not in STEP_KINDS:
            raise ValueError(f"kind must be one of {STEP_KINDS}, got {self.kind!r}")

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Trace:
    """A whole agent run: the task, its steps, the final answer and why the loop stopped."""
    task: str                                  # the question or goal
    steps: list[Step] = field(default_factory=list)
    answer: str | None = None                  # the final answer, None when the loop stopped without one
    stop_reason: str = ""                      # "final_answer", "max_steps", "budget", "repeat", ...
    messages: list[dict] = field(default_factory=list)  # the conversation as sent to the model

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.steps)

    @property
    def seconds(self) -> float:
        return max((s.start + s.model_seconds + s.tool_seconds for s in self.steps), default=0.0)

    def rows(self, width: int = 80) -> list[dict]:
        """One dict per step, long texts cut to ``width`` characters (for tables)."""
        def cut(text: str) -> str:
            text = " ".join(str(text).split())
            return text if len(text) <= width else text[:width - 1] + "…"
        return [{"step": s.index, "kind": s.kind, "thought": cut(s.thought),
                 "action": cut(s.action + ("" if s.arguments is None else " " + json.dumps(s.arguments))),
                 "observation": cut(s.observation), "tokens": s.tokens,
                 "model s": round(s.model_seconds, 3), "tool s": round(s.tool_seconds, 3)} for s in self.steps]

    def to_html(self, width: int = 80) -> str:
        """An HTML table of :meth:`rows` (escaped), shown by Jupyter through ``_repr_html_``."""
        rows = self.rows(width)
        if not rows:
            return f"<p>{html.escape(self.task)}: no steps ({html.escape(self.stop_reason)})</p>"
        head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
        body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(v))}</td>"
                                        for v in r.values()) + "</tr>" for r in rows)
        caption = html.escape(f"{self.task} → {self.answer!r} ({self.stop_reason}, {self.tokens} tokens)")
        return f"<table><caption>{caption}</caption><tr>{head}</tr>{body}</table>"

    _repr_html_ = to_html


__all__ = ["STEP_KINDS", "Step", "Trace"]
