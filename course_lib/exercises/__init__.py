"""Exercise checks for every chapter (COURSE_DESIGN §9).

A chapter notebook ships each exercise as a *stub cell* whose first line is the marker
``# EXERCISE NN.k`` and which defines one name (a function that raises ``NotImplementedError``
with a hint in Chinese, or a value left as ``...``), followed by a check cell::

    from course_lib.exercises import check
    check("03.2", min_p_filter)

:func:`check` prints a friendly "not done yet" line on a stub (the notebook still runs clean
under nbval), raises ``AssertionError`` saying what is wrong on a wrong answer, and prints a
success line (returning a truthy :class:`CheckResult`) on a right one. ``chapters/solutions/NN_name.ipynb`` holds the
same marker cells filled in and asserts ``check(...)``; ``tests/test_exercises.py`` proves every
check rejects the stub and the plausible wrong answers registered with it, and accepts the solution.

Checks live in ``course_lib/exercises/chNN.py`` (one module per chapter notebook prefix, e.g.
``ch03``, ``ch04b``), registered with :func:`exercise`. A check builds its own small inputs, so it
works on the answer alone, the same in the notebook and in the test.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Exercise:
    """A registered exercise: its id, the check and the wrong answers the check must reject."""
    id: str                                   # "03.2": chapter notebook prefix "03", exercise 2
    answer: str                               # the name the stub cell defines
    check: Callable[[Any], str]               # raises AssertionError (what is wrong) or returns a success line
    wrong: tuple[Any, ...] = field(default=())  # plausible wrong answers the check must reject
    writes_code: bool = False                 # the learner writes model code (not only reads a number)


REGISTRY: dict[str, Exercise] = {}


def exercise(id: str, answer: str, wrong: tuple[Any, ...] = (), writes_code: bool = False):
    """Register the decorated function as the check of exercise ``id`` (e.g. ``"05.1"``)."""
    def register(fn: Callable[[Any], str]) -> Callable[[Any], str]:
        if id in REGISTRY:
            raise ValueError(f"exercise {id!r} is registered twice")
        REGISTRY[id] = Exercise(id, answer, fn, tuple(wrong), writes_code)
        return fn
    return register


def load_all() -> dict[str, Exercise]:
    """Import every ``chNN`` module so the registry holds every exercise of the course."""
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("ch"):
            importlib.import_module(f"{__name__}.{info.name}")
    return REGISTRY


def get(exercise_id: str) -> Exercise:
    """The registered exercise ``exercise_id`` ("NN.k"), importing its chapter module on demand."""
    if not isinstance(exercise_id, str) or "." not in exercise_id:
        raise ValueError(f"exercise ids look like '03.2', got {exercise_id!r}")
    if exercise_id not in REGISTRY:
        chapter = exercise_id.split(".")[0]
        try:
            importlib.import_module(f"{__name__}.ch{chapter}")
        except ModuleNotFoundError:
            raise ValueError(f"no exercises for chapter {chapter!r} (course_lib/exercises/ch{chapter}.py)") from None
    if exercise_id not in REGISTRY:
        raise ValueError(f"unknown exercise {exercise_id!r}; chapter {exercise_id.split('.')[0]} has "
                         f"{sorted(k for k in REGISTRY if k.split('.')[0] == exercise_id.split('.')[0])}")
    return REGISTRY[exercise_id]


def is_stub(answer: Any) -> bool:
    """A value answer left as ``...`` or ``None`` has not been attempted yet."""
    return answer is Ellipsis or answer is None


class CheckResult:
    """What :func:`check` returns: truthy when the answer passed; shows nothing as a cell's last value."""

    def __init__(self, passed: bool):
        self.passed = passed

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"CheckResult(passed={self.passed})"

    def _ipython_display_(self) -> None:  # the printed line already says it; no `False` echoed under it
        pass


def check(exercise_id: str, answer: Any) -> CheckResult:
    """Check a learner's answer: falsy + a "not done yet" line on a stub, ``AssertionError`` when wrong."""
    ex = get(exercise_id)
    if is_stub(answer):
        print(f"⏳ 练习 {exercise_id} 还没做：把上面的 `...` 换成你的答案再运行这一格。")
        return CheckResult(False)
    try:
        message = ex.check(answer)
    except NotImplementedError as hint:
        print(f"⏳ 练习 {exercise_id} 还没做：{hint or '实现上面的函数后再运行这一格。'}")
        return CheckResult(False)
    except AssertionError as problem:
        raise AssertionError(f"✗ 练习 {exercise_id} 还不对：{problem}") from None
    print(f"✓ 练习 {exercise_id} 通过：{message}")
    return CheckResult(True)
