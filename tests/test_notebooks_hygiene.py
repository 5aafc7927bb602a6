"""House rules for every notebook under chapters/ (COURSE_DESIGN §9), checked on the committed files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from course_lib.course_map import notebooks as mapped_notebooks

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))
SOLUTION_NOTEBOOKS = sorted((CHAPTERS / "solutions").glob("*.ipynb"))
HAN = re.compile(r"[\u4e00-\u9fff]")


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


def test_solutions_match_chapters():
    names = {p.name for p in NOTEBOOKS}
    extra = [p.name for p in SOLUTION_NOTEBOOKS if p.name not in names]
    assert not extra, f"chapters/solutions/ holds notebooks with no chapter of that name: {extra}"


def test_course_map_matches_chapters_folder():
    on_disk = {p.name for p in NOTEBOOKS}
    mapped = set(mapped_notebooks())
    assert on_disk == mapped, f"not in course_map: {sorted(on_disk - mapped)}; missing on disk: {sorted(mapped - on_disk)}"
