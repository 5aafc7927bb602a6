"""A checkable task and rule-based rewards (DeepSeek-R1 §2.2.2: accuracy rewards + format rewards).

R1-Zero is trained with rewards a program computes, not a learned reward model: an *accuracy*
reward (is the final answer right?) and a *format* reward (is it inside the required tags?).
Here the task is integer arithmetic ``a op b`` (0 ≤ a, b ≤ 20 by default) with the answer in
``<answer>…</answer>``, so both rewards are exact. The instruction is a short system message that
shows no example answer (an example such as ``<answer>7</answer>`` is copied by a small model: its
7 turned up in answers to unrelated sums). Problems are drawn deterministically from a seeded
shuffle of all ``(a, op, b)`` triples; the dev split (used for training) and the held-out split
(used only to evaluate) are disjoint halves of that one shuffle.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

OPS = ("+", "-")
ANSWER_RE = re.compile(r"<answer>\s*(-?\d+)\s*</answer>")
FORMAT_RE = re.compile(r"^\s*<answer>\s*-?\d+\s*</answer>\s*$")
INSTRUCTION = "Answer with only the final number inside <answer></answer> tags."  # no example number to copy


@dataclass(frozen=True)
class Problem:
    """One arithmetic problem: the user prompt and the integer answer."""
    a: int
    op: str
    b: int

    @property
    def answer(self) -> int:
        """The true result of ``a op b``."""
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def question(self) -> str:
        """The user message shown to the model."""
        return f"What is {self.a} {self.op} {self.b}?"

    @property
    def messages(self) -> list[dict]:
        """The chat prompt: the instruction as system message, then the question."""
        return [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": self.question}]

    def demonstration(self) -> list[dict]:
        """The prompt and the right answer in the required format: one SFT warm-up chat."""
        return self.messages + [{"role": "assistant", "content": f"<answer>{self.answer}</answer>"}]


def arithmetic_problems(split: str, n: int, seed: int = 0, max_operand: int = 20) -> list[Problem]:
    """``n`` problems of ``split`` (``"dev"`` or ``"heldout"``), the same for the same seed.

    All ``(a, op, b)`` with ``0 ≤ a, b ≤ max_operand`` are shuffled once with ``seed``; dev takes
    the first half, held-out the second, so no problem appears in both.
    """
    if split not in ("dev", "heldout"):
        raise ValueError(f"split must be 'dev' or 'heldout', got {split!r}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    triples = [(a, op, b) for a in range(max_operand + 1) for op in OPS for b in range(max_operand + 1)]
    random.Random(seed).shuffle(triples)
    half = len(triples) // 2
    pool = triples[:half] if split == "dev" else triples[half:]
    if n > len(pool):
        raise ValueError(f"n={n} exceeds the {len(pool)} problems of the {split} split")
    return [Problem(*t) for t in pool[:n]]


def extract_answer(completion: str) -> int | None:
    """The integer in the last ``<answer>…</answer>`` of ``completion``, or ``None``."""
    found = ANSWER_RE.findall(completion)
    return int(found[-1]) if found else None


def _check_pairs(completions: list[str], answers: list[int] | None = None) -> None:
    if not isinstance(completions, list) or not completions:
        raise ValueError("completions must be a non-empty list of strings")
    if not all(isinstance(c, str) for c in completions):
        raise TypeError("completions must be strings")
    if answers is not None and len(answers) != len(completions):
        raise ValueError(f"answers ({len(answers)}) and completions ({len(completions)}) must have the same length")


def format_reward(completions: list[str]) -> list[float]:
    """1.0 when the completion is exactly ``<answer>N</answer>`` (whitespace allowed), else 0.0."""
    _check_pairs(completions)
    return [1.0 if FORMAT_RE.match(c) else 0.0 for c in completions]


def correctness_reward(completions: list[str], answers: list[int]) -> list[float]:
    """1.0 when the tagged answer equals the true one, else 0.0 (no tag → 0)."""
    _check_pairs(completions, answers)
    return [1.0 if extract_answer(c) == a else 0.0 for c, a in zip(completions, answers)]


def number_accuracy(completions: list[str], answers: list[int]) -> float:
    """Share of completions whose *last integer* is the answer, tags or not: the arithmetic without the format."""
    _check_pairs(completions, answers)
    last = [re.findall(r"-?\d+", c) for c in completions]
    return sum(bool(found) and int(found[-1]) == a for found, a in zip(last, answers)) / len(completions)


def total_reward(completions: list[str], answers: list[int], format_weight: float = 0.5) -> list[float]:
    """``correctness + format_weight · format``, the sum TRL computes over its reward functions."""
    if not isinstance(format_weight, (int, float)) or not math.isfinite(format_weight):
        raise ValueError(f"format_weight must be a finite number, got {format_weight!r}")
    return [c + format_weight * f for c, f in zip(correctness_reward(completions, answers),
                                                  format_reward(completions))]
