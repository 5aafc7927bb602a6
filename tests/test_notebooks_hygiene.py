"""House rules for every notebook under chapters/ (COURSE_DESIGN §9), checked on the committed files.

Stale outputs. Two ways a saved output stops matching what the notebook would print today:

- a code cell edited without re-executing: ``metadata.course.source_sha256`` (written by
  ``scripts/run_notebook.py``) no longer matches the code (:func:`test_saved_outputs_come_from_the_current_source`);
- a library change that alters what a cell prints (chapter 00's course map once still said
  "待写" for chapters that had shipped). Deterministic cells whose text comes from ``course_lib``
  are marked ``# NBVAL_CHECK_OUTPUT``; nbval, which the full test command already runs on every
  notebook, then compares their saved output with a fresh one and fails on any difference
  (:func:`test_nbval_fails_on_a_stale_library_output` proves it). Exercise check messages, the
  commonest library text in a notebook, are also compared without a kernel in
  ``tests/test_exercises.py``.

Why not hash the ``course_lib`` modules a notebook imports into ``source_sha256``? Every notebook
imports ``course_lib.config`` and most import a dozen modules, so any library edit (a docstring,
a speed-up) would make most notebooks "stale" and force re-executing them (minutes each on two
cores) although their outputs cannot change; and most outputs (timings, training curves) are not
deterministic, so the hash would say nothing about them either. The marker costs no extra run
and fails exactly when a marked output changes, naming the cell.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.course_map import notebooks as mapped_notebooks

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))
SOLUTION_NOTEBOOKS = sorted((CHAPTERS / "solutions").glob("*.ipynb"))
HAN = re.compile(r"[\u4e00-\u9fff]")
TQDM_BAR = re.compile(r"\d+%\|.*\| *\d+/\d+")


def _run_notebook_script():
    spec = importlib.util.spec_from_file_location("run_notebook", ROOT / "scripts" / "run_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN_NOTEBOOK = _run_notebook_script()


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "chapters/ has no notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTION_NOTEBOOKS, ids=lambda p: p.parent.name + "/" + p.name)
def test_notebook_hygiene(path: Path):
    assert path.name.isascii() and re.fullmatch(r"\d\d[a-z]?_[a-z0-9_]+\.ipynb", path.name), \
        f"{path.name}: file names are ASCII 'NN_name.ipynb' (or 'NNa_name.ipynb')"
    assert path.stat().st_size <= 1_000_000, f"{path.name} is {path.stat().st_size / 1e6:.2f} MB (limit 1 MB)"
    nb = _load(path)
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: strip metadata.widgets (scripts/run_notebook.py)"
    first = nb["cells"][0]
    title = "".join(first["source"])
    assert first["cell_type"] == "markdown" and title.startswith("# ") and HAN.search(title.split("\n")[0]), \
        f"{path.name}: the first cell must be a markdown title with Chinese in it"
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), \
        f"{path.name}: not executed top to bottom in one fresh kernel (execution counts {counts[:12]}...)"
    for c in code:
        for out in c.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name}: committed with an error output"
            assert "widget-state" not in json.dumps(out.get("metadata", {})), f"{path.name}: widget state in an output"
    setup = "".join(code[0]["source"])
    assert "course_lib.config" in setup and "setup(" in setup, \
        f"{path.name}: the first code cell sets up the run with course_lib.config.setup()"


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTION_NOTEBOOKS, ids=lambda p: p.parent.name + "/" + p.name)
def test_saved_outputs_come_from_the_current_source(path: Path):
    """The outputs were produced by this very code: scripts/run_notebook.py records the hash of the code
    cells it executed; editing a cell without re-executing (a stale output) changes the hash."""
    nb = _load(path)
    recorded = nb.get("metadata", {}).get("course", {}).get("source_sha256")
    assert recorded == RUN_NOTEBOOK.source_hash(nb), (
        f"{path.name}: the saved outputs were not produced by the current code "
        f"(re-execute: python scripts/run_notebook.py {path.relative_to(ROOT)})")


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTION_NOTEBOOKS, ids=lambda p: p.parent.name + "/" + p.name)
def test_progress_bars_are_saved_finished(path: Path):
    """A tqdm bar saved as a widget view reads "0%| 0/N" wherever the widget cannot render (GitHub)."""
    for cell in _load(path)["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if RUN_NOTEBOOK.WIDGET_VIEW in data:
                text = "".join(data.get("text/plain", ""))
                assert not TQDM_BAR.search(text), f"{path.name}: progress bar saved as a widget view: {text[:80]!r}"


def test_finished_progress_bar_replaces_the_widget_view():
    view = {"output_type": "display_data", "metadata": {},
            "data": {RUN_NOTEBOOK.WIDGET_VIEW: {"model_id": "box"}, "text/plain": "train:   0%|          | 0/120"}}
    other = {"output_type": "display_data", "metadata": {},
             "data": {RUN_NOTEBOOK.WIDGET_VIEW: {"model_id": "fig"}, "text/plain": "FigureWidget(...)"}}
    state = {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}},
        "l": {"model_name": "HTMLModel", "state": {"value": "train: 100%"}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": 120, "max": 120}},
        "r": {"model_name": "HTMLModel", "state": {"value": " 120/120 [00:03&lt;00:00, 40.1it/s, loss=0.5]"}},
        "fig": {"model_name": "FigureModel", "state": {}},
    }
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[view, other])])
    nb.metadata["widgets"] = {RUN_NOTEBOOK.WIDGET_STATE: {"state": state}}
    assert RUN_NOTEBOOK.finish_progress_bars(nb) == 1
    assert view["data"] == {"text/plain": "train: 100%|██████████| 120/120 [00:03<00:00, 40.1it/s, loss=0.5]"}
    assert RUN_NOTEBOOK.WIDGET_VIEW in other["data"]  # other widgets keep their live view


def test_source_hash_changes_when_code_changes():
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 标题"), nbformat.v4.new_code_cell("print(1)")])
    before = RUN_NOTEBOOK.source_hash(nb)
    nb.cells[0].source = "# 另一个标题"
    assert RUN_NOTEBOOK.source_hash(nb) == before  # prose does not change outputs
    nb.cells[1].source = "print(2)"
    assert RUN_NOTEBOOK.source_hash(nb) != before


def test_solutions_match_chapters():
    names = {p.name for p in NOTEBOOKS}
    extra = [p.name for p in SOLUTION_NOTEBOOKS if p.name not in names]
    assert not extra, f"chapters/solutions/ holds notebooks with no chapter of that name: {extra}"


def test_course_map_matches_chapters_folder():
    on_disk = {p.name for p in NOTEBOOKS}
    mapped = set(mapped_notebooks())
    assert on_disk == mapped, f"not in course_map: {sorted(on_disk - mapped)}; missing on disk: {sorted(mapped - on_disk)}"


def test_nbval_fails_on_a_stale_library_output(tmp_path):
    """A marked cell whose saved text is what the library printed before a change fails under nbval.

    Two marked cells print the same library output (the course map's notebooks): one saved with
    today's text passes, one saved with the text from before a chapter was added fails.
    """
    import nbformat

    source = "# NBVAL_CHECK_OUTPUT\nfrom course_lib.course_map import notebooks\nprint(len(notebooks()), notebooks()[-1])"
    today = f"{len(mapped_notebooks())} {mapped_notebooks()[-1]}\n"
    before = f"{len(mapped_notebooks()) - 1} {mapped_notebooks()[-2]}\n"   # the map before its last chapter
    cells = []
    for text in (today, before):
        cell = nbformat.v4.new_code_cell(source, execution_count=len(cells) + 1)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        cells.append(cell)
    notebook = tmp_path / "stale.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}), notebook)
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")   # not the repository's addopts
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "-p", "no:randomly", "-q", notebook.name], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    summary = run.stdout.strip().splitlines()[-1]
    assert "1 failed, 1 passed" in summary, run.stdout[-2000:] + run.stderr[-2000:]
    assert before.strip() in run.stdout and today.strip() in run.stdout  # nbval shows the saved and the fresh text
