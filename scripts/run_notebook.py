"""Execute chapter notebooks in place and make them commit-ready (§9).

    python scripts/run_notebook.py chapters/03_llama.ipynb [more.ipynb ...] [--timeout 900]

Runs every cell top to bottom in a fresh kernel (cwd = the notebook's folder, like nbval),
then makes the file commit-ready:

- every ``tqdm.auto`` progress bar saved as a widget view becomes its finished text bar
  (``desc: 100%|██████████| 120/120 [00:01<00:00, 90.2it/s]``): without the widget state a
  viewer (GitHub, nbviewer, a reopened notebook) would show ``0%| 0/120``; running the cell
  again in JupyterLab still draws the live widget;
- saved widget state (``metadata.widgets``, which embeds plotly.js and weighs MBs) is stripped;
- every saved plotly figure gets a static ``image/png`` beside it (kaleido in the installed
  Chromium, :mod:`course_lib.viz.snapshot`), so GitHub and nbviewer show it too; without a
  Chrome/Chromium this step is skipped with a warning (never downloaded);
- ``metadata.course.source_sha256`` records the hash of the code that produced the outputs, so
  ``tests/test_notebooks_hygiene.py`` can tell when a cell was edited without re-executing.

It reports the wall-clock time and the file size. A failing cell stops with the error shown.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's course_lib
from course_lib.viz.snapshot import NoBrowserError, add_static_images  # noqa: E402

LIMIT_BYTES = 1_000_000
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
BAR_WIDTH = 10  # tqdm's text bar in a notebook: "|██████████|"


def source_hash(nb) -> str:
    """SHA-256 of the code cells' sources, in order: what the saved outputs were produced from."""
    code = [("".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for c in nb["cells"] if c["cell_type"] == "code"]
    return hashlib.sha256("\x00".join(code).encode("utf-8")).hexdigest()


def _tqdm_text(state: dict, model_id: str) -> str | None:
    """The text bar of a finished ``tqdm.notebook`` widget (HBox of HTML, FloatProgress, HTML), else None."""
    box = state.get(model_id, {})
    if box.get("model_name") != "HBoxModel":
        return None
    parts = [state.get(ref.removeprefix("IPY_MODEL_"), {}) for ref in box.get("state", {}).get("children", [])]
    if [p.get("model_name") for p in parts] != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (p.get("state", {}) for p in parts)
    total, value = bar.get("max") or 0, bar.get("value") or 0
    filled = BAR_WIDTH if not total else min(BAR_WIDTH, int(BAR_WIDTH * value / total))
    return (f"{html.unescape(left.get('value', ''))}|{'█' * filled}{' ' * (BAR_WIDTH - filled)}|"
            f"{html.unescape(right.get('value', ''))}").replace("\xa0", " ")


def finish_progress_bars(nb: nbformat.NotebookNode) -> int:
    """Replace each saved tqdm widget view by its final text bar; returns how many were replaced."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            text = _tqdm_text(state, view.get("model_id", "")) if view else None
            if text is not None:
                out["data"] = {"text/plain": text}
                replaced += 1
    return replaced


def strip_widget_state(nb: nbformat.NotebookNode) -> None:
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("widgets", None)
        cell.metadata.pop("execution", None)


def add_images(nb: nbformat.NotebookNode, path: Path) -> None:
    """Static PNGs for the plotly figures; a warning (not a failure) where no Chromium is installed."""
    try:
        add_static_images(nb)
    except NoBrowserError as error:
        print(f"WARNING {path}: plotly figures saved without static PNGs: {error}", file=sys.stderr)


def run(path: Path, timeout: int, out_dir: Path | None = None) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    finish_progress_bars(nb)
    strip_widget_state(nb)
    add_images(nb, path)
    nb.metadata.setdefault("course", {})["source_sha256"] = source_hash(nb)
    target = path if out_dir is None else out_dir / path.name
    nbformat.write(nb, target)
    size = target.stat().st_size
    flag = "" if size <= LIMIT_BYTES else f"  OVER THE {LIMIT_BYTES / 1e6:.0f} MB LIMIT"
    print(f"{target}: {seconds:.1f} s, {size / 1e3:.0f} kB{flag}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    parser.add_argument("--out", type=Path, default=None,
                        help="write executed copies here instead of in place (cells still run in the notebook's folder)")
    args = parser.parse_args()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    for path in args.notebooks:
        run(path, args.timeout, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
