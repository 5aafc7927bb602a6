"""Execute chapter notebooks in place and make them commit-ready (§9).

    python scripts/run_notebook.py chapters/03_llama.ipynb [more.ipynb ...] [--timeout 900]

Runs every cell top to bottom in a fresh kernel (cwd = the notebook's folder, like nbval),
strips saved widget state (``metadata.widgets``, which embeds plotly.js and weighs MBs), and
reports the wall-clock time and the file size. A failing cell stops with the error shown.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

LIMIT_BYTES = 1_000_000


def strip_widget_state(nb: nbformat.NotebookNode) -> None:
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("widgets", None)
        cell.metadata.pop("execution", None)


def run(path: Path, timeout: int, out_dir: Path | None = None) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    strip_widget_state(nb)
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
