"""The chapter's multi-step task set: questions that take two or more tool calls and have a checkable answer.

``course_lib/datasets/agent_tasks.jsonl`` (made by ``scripts/make_agent_tasks.py``, seeded) holds five
families, each needing two tool calls of the :func:`task_tools` set:

- ``arith``: two calculator steps (a product, then a sum or difference with it);
- ``units``: a calculator product, then ``convert_units`` of the total;
- ``dates``: ``add_days`` then ``weekday``, or ``date_diff`` then the calculator;
- ``python``: run a program in the sandbox (``python``), then the calculator on what it printed;
- ``docs``: two ``search`` look-ups in the Python docs (BM25 over ``pydoc_data.topics`` and the
  stdlib docstrings); the answer names the top passage of each.

A task carries its expert *plan*: the tool calls that solve it, where ``{"ref": i}`` (a number) or
``"{i}"`` inside a string stands for the value read from step ``i``'s observation
(:func:`result_value`). ``dev`` and ``test`` use disjoint question templates and disjoint values; the
test split is never used for training or for in-context examples (the WebGPT recipe: Nakano et al.
2021, §3: behaviour cloning on demonstrations, evaluation on held-out questions).

:func:`is_correct` checks a final answer: a number must be the *last* number the answer writes
(within a relative 1e-4, so rounding to five digits passes); texts (weekdays, dates, doc titles)
must all appear in it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from course_lib.agent import tools as agent_tools
from course_lib.agent.sandbox import Limits
from course_lib.datasets import dataset

SPLITS = ("dev", "test")
FAMILIES = ("arith", "units", "dates", "python", "docs")
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")
_TITLE = re.compile(r"^\[1\] (.*?) \(id=", re.M)


@dataclass(frozen=True)
class Task:
    """One task: the question, its family and template, the expert plan, and the gold answer."""
    id: str
    split: str
    family: str
    template: str
    question: str
    plan: tuple        # ({"tool": name, "args": {...}}, ...) with {"ref": i} / "{i}" for earlier results
    answer: str        # the expert's final answer: "{i}" stands for the value read from step i
    gold: dict         # {"number": x} or {"texts": [...]}: what is_correct checks


def load(split: str | None = None) -> list[Task]:
    """The tasks of ``split`` (``"dev"`` or ``"test"``; ``None``: all), in file order."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    rows = [json.loads(line) for line in dataset("agent_tasks.jsonl").read_text(encoding="utf-8").splitlines()]
    return [Task(**{**r, "plan": tuple(r["plan"])}) for r in rows if split is None or r["split"] == split]


@functools.lru_cache(maxsize=1)
def docs_retriever():
    """BM25 over the Python docs topics and stdlib docstrings (chapter 09's corpus, without the notebooks)."""
    from course_lib import rag
    return rag.BM25Retriever(rag.structured_chunks(rag.load_corpus(("topics", "stdlib"))))


def task_tools(retriever=None, limits: Limits | None = None) -> agent_tools.ToolRegistry:
    """The tools every task may use: calculator, python, convert_units, the date tools and a one-result search.

    ``retriever`` defaults to :func:`docs_retriever` (built on first use, ~10 s).
    """
    t = agent_tools
    search = t.search_tool(retriever if retriever is not None else docs_retriever(), k=1, max_chars=60)
    return t.ToolRegistry([t.calculator_tool(), t.python_tool(limits), t.convert_units_tool(), *t.date_tools(), search])


def result_value(tool: str, observation: str) -> str:
    """The value a later step uses from ``tool``'s observation (the converted number, the top title, ...)."""
    text = observation.strip()
    if tool == "convert_units":
        return text.split("= ", 1)[-1].split(" ")[0]
    if tool == "date_diff":
        return text.split(" ")[0]
    if tool == "search":
        match = _TITLE.search(text)
        return match.group(1) if match else text
    return text


def _number(text: str):
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 2 ** 53 else value


def fill(args, results: list[str]):
    """``args`` with ``{"ref": i}`` replaced by result ``i`` as a number and ``"{i}"`` in strings by its text."""
    if isinstance(args, dict):
        if set(args) == {"ref"}:
            return _number(results[args["ref"]])
        return {k: fill(v, results) for k, v in args.items()}
    if isinstance(args, str):
        return re.sub(r"\{(\d+)\}", lambda m: results[int(m.group(1))], args)
    return args


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text`` (thousands separators allowed), in order."""
    return [float(m.group().replace(",", "")) for m in _NUMBER.finditer(text)]


def is_correct(task: Task, answer: str | None) -> bool:
    """Does ``answer`` give the task's gold answer (see the module docstring for the rule)?"""
    if not isinstance(answer, str) or not answer.strip():
        return False
    if "number" in task.gold:
        found = numbers_in(answer)
        want = float(task.gold["number"])
        return bool(found) and abs(found[-1] - want) <= 1e-4 * max(1.0, abs(want))
    return all(t.lower() in answer.lower() for t in task.gold["texts"])


__all__ = ["FAMILIES", "SPLITS", "Task", "docs_retriever", "fill", "is_correct", "load", "numbers_in",
           "result_value", "task_tools"]
