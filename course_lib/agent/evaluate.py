"""Scoring agents on the task set: one episode per task, and the success table by condition.

An *episode* runs one task through one loop with one chat model and records whether the final answer
is right (:func:`course_lib.agent.tasks.is_correct`), how many steps (model calls) it took, the tokens
the model read and wrote (``ChatReply.usage``) and the wall time. A *condition* is a chat model
(free SmolLM2, SmolLM2 held to the turn grammar, SmolLM2 with the behaviour-cloned adapter, both, or
a remote endpoint); :func:`success_table` summarises episodes by (loop, condition): success rate,
mean steps, tokens and seconds per task.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from course_lib.agent.experts import FORMATS, make_agent
from course_lib.agent.memory import AgentMemory
from course_lib.agent.tasks import Task, is_correct
from course_lib.constrained.turns import TurnGrammar, turn_matcher

STEP_CAP = 4        # two tool calls and an answer, plus one step to recover from a mistake
MAX_TOKENS = {"react": 72, "function_calling": 64, "autogpt": 128}  # one reply's cap per loop


@dataclass(frozen=True)
class Episode:
    """The result of one task in one loop under one condition."""
    task: str
    family: str
    loop: str
    condition: str
    correct: bool
    steps: int
    tokens: int
    seconds: float
    stop_reason: str
    answer: str | None


def run_episode(task: Task, fmt: str, model, tools, condition: str, embed=None,
                max_steps: int = STEP_CAP, max_tokens: int | None = None) -> tuple[Episode, object]:
    """``(Episode, Trace)`` of ``task`` in loop ``fmt`` with ``model`` (AutoGPT's memory uses ``embed``)."""
    memory = AgentMemory(embed) if fmt == "autogpt" else None
    if fmt == "autogpt" and embed is None:
        raise ValueError("the autogpt loop needs embed (e.g. memory.minilm_embedder())")
    agent = make_agent(fmt, model, tools, memory, max_steps=max_steps, max_tokens=max_tokens or MAX_TOKENS[fmt])
    start = time.perf_counter()
    trace = agent.run(task.question)
    seconds = time.perf_counter() - start
    model_calls = len({s.index for s in trace.steps if s.kind != "stop"})
    return Episode(task.id, task.family, fmt, condition, is_correct(task, trace.answer), model_calls, trace.tokens,
                   seconds, trace.stop_reason, trace.answer), trace


def turn_grammar(fmt: str, tools, tokenizer) -> TurnGrammar:
    """The turn grammar of loop ``fmt`` over ``tools`` (a registry) for ``tokenizer``: ``LocalChatModel``'s constraint."""
    return TurnGrammar.from_tokenizer(turn_matcher(fmt, tools.to_openai()), tokenizer)


def local_conditions(fmt: str, tools, model, tokenizer, tuned=None, grammar: TurnGrammar | None = None) -> dict:
    """``{condition: LocalChatModel}``: free and grammar on ``model``; adapter and adapter + grammar on ``tuned``."""
    from course_lib.chat import LocalChatModel

    grammar = grammar or turn_grammar(fmt, tools, tokenizer)
    out = {"free": LocalChatModel(model, tokenizer), "grammar": LocalChatModel(model, tokenizer, constraint=grammar)}
    if tuned is not None:
        out["adapter"] = LocalChatModel(tuned, tokenizer)
        out["adapter + grammar"] = LocalChatModel(tuned, tokenizer, constraint=grammar)
    return out


def success_table(episodes: list[Episode]) -> list[dict]:
    """One row per (loop, condition), in the order first seen: tasks, success rate, mean steps, tokens, seconds."""
    groups: dict[tuple[str, str], list[Episode]] = {}
    for e in episodes:
        groups.setdefault((e.loop, e.condition), []).append(e)
    rows = []
    for (loop, condition), group in groups.items():
        n = len(group)
        rows.append({"loop": loop, "condition": condition, "tasks": n,
                     "success": sum(e.correct for e in group) / n,
                     "steps": sum(e.steps for e in group) / n,
                     "tokens": sum(e.tokens for e in group) / n,
                     "seconds": sum(e.seconds for e in group) / n})
    return rows


def format_table(rows: list[dict]) -> str:
    """The success table as Markdown."""
    lines = ["| loop | condition | tasks | success | mean steps | tokens / task | seconds / task |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['loop']} | {r['condition']} | {r['tasks']} | {r['success']:.0%} | {r['steps']:.2f} "
              f"| {r['tokens']:.0f} | {r['seconds']:.1f} |" for r in rows]
    return "\n".join(lines)


def episode_dict(episode: Episode) -> dict:
    """An episode as a plain dict (for JSON records)."""
    return asdict(episode)


__all__ = ["FORMATS", "MAX_TOKENS", "STEP_CAP", "Episode", "episode_dict", "format_table", "local_conditions",
           "run_episode", "success_table", "turn_grammar"]
