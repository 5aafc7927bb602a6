"""Every exercise is real (COURSE_DESIGN §9): its check rejects the stub the chapter ships and the
plausible wrong answers registered with it, and accepts the solution in ``chapters/solutions/``.

Exercise cells start with ``# EXERCISE NN.k`` and are executed here on their own (after
:data:`PRELUDE`), exactly as a learner's cell defines the answer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from course_lib import exercises
from course_lib.exercises import check

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
SOLUTIONS = ROOT / "chapters" / "solutions"
MARKER = re.compile(r"^# EXERCISE (\d\d[a-z]?\.\d+)\b")
PRELUDE = "import math\nimport torch\nfrom torch import nn\nimport torch.nn.functional as F\n"


def exercise_cells(path: Path) -> dict[str, str]:
    """``{exercise id: cell source}`` for every marked code cell of a notebook."""
    cells = {}
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        match = MARKER.match(source)
        if cell["cell_type"] == "code" and match:
            assert match.group(1) not in cells, f"{path.name}: exercise {match.group(1)} marked twice"
            cells[match.group(1)] = source
    return cells


def answer_from(source: str, name: str):
    namespace: dict = {}
    exec(compile(PRELUDE + source, "<exercise cell>", "exec"), namespace)
    assert name in namespace, f"the exercise cell must define {name!r}"
    return namespace[name]


CASES = [(nb, ex_id) for nb in CHAPTERS for ex_id in exercise_cells(nb)]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_ships_real_exercises(path: Path):
    prefix = path.name.split("_")[0]
    cells = exercise_cells(path)
    assert len(cells) >= 3, f"{path.name}: {len(cells)} exercises, at least 3 are required"
    assert all(ex_id.split(".")[0] == prefix for ex_id in cells), f"{path.name}: exercise ids must start with {prefix}"
    solution = SOLUTIONS / path.name
    assert solution.exists(), f"{path.name}: no solutions notebook {solution.relative_to(ROOT)}"
    assert set(exercise_cells(solution)) == set(cells), f"{solution.name}: not the same exercises as the chapter"
    registered = [exercises.get(ex_id) for ex_id in cells]
    assert any(ex.writes_code for ex in registered), f"{path.name}: no exercise makes the learner write model code"
    for ex in registered:
        assert ex.wrong, f"exercise {ex.id}: register at least one plausible wrong answer"
    source = json.loads(path.read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in source["cells"] if c["cell_type"] == "code")
    for ex_id in cells:
        assert re.search(rf"check\(\s*['\"]{re.escape(ex_id)}['\"]", code), f"{path.name}: no check cell for {ex_id}"


ROUNDING_NOISE = re.compile(r"\d\.\d+e[-+]\d+")  # "max |diff| 6.0e-08": float noise of the learner's code and threads


def comparable(printed: str) -> str:
    """A check's printed line with its float-noise numbers (scientific notation) masked."""
    return ROUNDING_NOISE.sub("<noise>", printed)


def saved_check_output(path: Path, ex_id: str) -> str:
    """The text the notebook's check cell for ``ex_id`` printed when it was last executed (the check's line
    and whatever else the cell prints)."""
    call = re.compile(rf"check\(\s*['\"]{re.escape(ex_id)}['\"]")
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
             if c["cell_type"] == "code" and call.search("".join(c["source"]))]
    assert len(cells) == 1, f"{path.name}: {len(cells)} check cells for {ex_id}"
    return comparable("".join("".join(out["text"]) for out in cells[0].get("outputs", [])
                              if out["output_type"] == "stream"))


@pytest.mark.parametrize("path, ex_id", CASES, ids=[f"{p.name.split('_')[0]}-{e}" for p, e in CASES])
def test_check_rejects_stub_and_wrong_answers_and_accepts_solution(path: Path, ex_id: str, capsys):
    """Also a stale-output check: what the check prints now is what the saved notebooks show.

    The check's messages live in ``course_lib/exercises``; a change there that alters a saved
    "还没做" or "通过" line fails here, naming the notebook to re-execute, without running a kernel.
    Numbers in scientific notation (rounding noise such as ``max |diff| 6.0e-08``) are masked.
    """
    ex = exercises.get(ex_id)
    stub = answer_from(exercise_cells(path)[ex_id], ex.answer)
    assert not check(ex_id, stub), f"{ex_id}: the shipped stub must count as not done"
    printed = capsys.readouterr().out
    assert "还没做" in printed
    assert comparable(printed) in saved_check_output(path, ex_id), (
        f"{path.name}: the saved output of check({ex_id!r}) is stale (re-execute the notebook)")
    for wrong in ex.wrong:
        with pytest.raises(AssertionError, match=f"练习 {re.escape(ex_id)} 还不对"):
            check(ex_id, wrong)
    solution = answer_from(exercise_cells(SOLUTIONS / path.name)[ex_id], ex.answer)
    capsys.readouterr()
    assert check(ex_id, solution), f"{ex_id}: the solution must pass its check"
    assert comparable(capsys.readouterr().out) in saved_check_output(SOLUTIONS / path.name, ex_id), (
        f"solutions/{path.name}: the saved output of check({ex_id!r}) is stale (re-execute the notebook)")


def test_check_messages():
    @exercises.exercise("99.1", answer="double", wrong=(lambda x: x + 2,))
    def _check_double(fn):
        assert fn(3) == 6, f"double(3) should be 6, got {fn(3)}"
        return "double(3) = 6"

    try:
        def stub(x):
            raise NotImplementedError("提示：乘以 2")
        assert not check("99.1", stub)
        assert not check("99.1", ...)
        with pytest.raises(AssertionError, match="double\\(3\\) should be 6, got 5"):
            check("99.1", lambda x: x + 2)
        result = check("99.1", lambda x: 2 * x)
        assert result and repr(result) == "CheckResult(passed=True)"
        with pytest.raises(ValueError, match="no exercises for chapter .99."):
            check("99.2", None)
        with pytest.raises(ValueError, match="registered twice"):
            exercises.exercise("99.1", answer="x")(_check_double)
    finally:
        exercises.REGISTRY.pop("99.1")


def normalised_lines(source: str) -> list[str]:
    """Code lines without comments, imports, inner whitespace and short lines (``break``, ``return x``)."""
    lines = []
    for line in source.splitlines():
        line = re.sub(r"\s+", "", line.split("#", 1)[0])
        if len(line) >= 12 and not line.startswith(("import", "from")):
            lines.append(line)
    return lines


# Chapters whose solutions still copy a chapter cell, listed only while their owner rewrites them
# ({prefix: reason}); the test is skipped for them and fails once a listed chapter passes, so the
# list cannot go stale. Empty: every chapter passes.
COPY_ALLOWED: dict[str, str] = {}
PREFIXES = [p.name.split("_")[0] for p in CHAPTERS]


def shown_before(path: Path) -> dict[str, list[str]]:
    """``{exercise id: the chapter's other code cells above its stub}``: what the learner has already seen."""
    shown, seen = {}, []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "code":
            continue
        match = MARKER.match(source)
        if match:
            shown[match.group(1)] = list(seen)
        else:
            seen.append(source)
    return shown


def copies(path: Path, solution: Path) -> list[str]:
    """What is wrong with each code-writing solution in ``solution`` that re-types a cell of chapter ``path``.

    A solution (normalised: no comments, imports, whitespace or short lines) is a copy when its
    whole body is contained in one code cell above its stub in the chapter, or when more than half
    of its lines appear verbatim among those cells' lines.
    """
    before = shown_before(path)
    problems = []
    for ex_id, source in exercise_cells(solution).items():
        if not exercises.get(ex_id).writes_code:
            continue
        shown = before.get(ex_id, [])
        shown_lines = {line for s in shown for line in normalised_lines(s)}
        body = normalised_lines(source)
        if body and any("\n".join(body) in "\n".join(normalised_lines(s)) for s in shown):
            problems.append(f"{ex_id}: the solution is a chapter cell")
        copied = sum(line in shown_lines for line in body)
        if copied > len(body) // 2:
            problems.append(f"{ex_id}: {copied} of {len(body)} solution lines appear in the chapter")
    return problems


@pytest.mark.parametrize("prefix", PREFIXES)
def test_solutions_are_not_copies_of_chapter_cells(prefix: str):
    """A code-writing exercise goes past the page: its solution is not a cell the chapter already shows."""
    path = next(p for p in CHAPTERS if p.name.startswith(f"{prefix}_"))
    problems = copies(path, SOLUTIONS / path.name)
    if prefix in COPY_ALLOWED:
        assert problems, f"{prefix} passes now: remove it from COPY_ALLOWED"
        pytest.skip(f"{prefix}: {COPY_ALLOWED[prefix]}: {problems}")
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_copy_check_catches_a_copied_solution(tmp_path):
    """The check fails on a solution that re-types a chapter cell with other comments and spacing."""
    import nbformat

    shown = "def f(x):\n    y = x * 2 + x.mean()   # twice plus the mean\n    return torch.relu(y) + y.sum()\n"
    copied = "# EXERCISE 99.1 — f\ndef f(x):\n    y = x*2+x.mean()\n    return torch.relu(y)+y.sum()  # same\n"
    half = ("# EXERCISE 99.1 — f\ndef f(x):\n    y = x * 2 + x.mean()\n    z = torch.relu(y) + y.sum()\n"
            "    return torch.relu(y) + y.sum()\n")
    own = "# EXERCISE 99.1 — f\ndef f(x):\n    z = torch.tanh(x) - x.mean()\n    return z.clamp(min=0) * 3\n"
    chapter, solution = tmp_path / "99_demo.ipynb", tmp_path / "99_solution.ipynb"
    stub = "# EXERCISE 99.1 — f\ndef f(x):\n    raise NotImplementedError\n"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(shown), nbformat.v4.new_code_cell(stub),
                                                   nbformat.v4.new_code_cell(own)]), chapter)
    exercises.exercise("99.1", answer="f", wrong=(None,), writes_code=True)(lambda fn: "")
    try:
        found = {}
        for name, source in (("copied", copied), ("half", half), ("own", own)):
            nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), solution)
            found[name] = copies(chapter, solution)
    finally:
        exercises.REGISTRY.pop("99.1")
    assert found["copied"] == ["99.1: the solution is a chapter cell", "99.1: 2 of 2 solution lines appear in the chapter"]
    assert found["half"] == ["99.1: 2 of 3 solution lines appear in the chapter"]  # no single cell holds it
    assert found["own"] == []  # a cell below the stub (here: the same code) is not "shown" yet


def test_saved_output_check_catches_an_altered_check_message(capsys, monkeypatch):
    """A library change to a check's success line makes the saved solutions output stale, and the comparison sees it."""
    ex_id = "03.1"
    ex = exercises.get(ex_id)
    solution = answer_from(exercise_cells(SOLUTIONS / "03_llama.ipynb")[ex_id], ex.answer)
    saved = saved_check_output(SOLUTIONS / "03_llama.ipynb", ex_id)
    assert check(ex_id, solution)
    assert comparable(capsys.readouterr().out) in saved  # today's message is the saved one
    altered = exercises.Exercise(ex.id, ex.answer, lambda fn: ex.check(fn) + "（新）", ex.wrong, ex.writes_code)
    monkeypatch.setitem(exercises.REGISTRY, ex_id, altered)
    assert check(ex_id, solution)
    assert comparable(capsys.readouterr().out) not in saved  # the altered library message is caught
