"""Give every plotly figure saved in the chapters a PNG that GitHub / nbviewer / nbconvert can show.

    python scripts/add_static_images.py                      # every chapter and solution notebook
    python scripts/add_static_images.py chapters/03_llama.ipynb [...]

Post-processes the saved outputs only (no re-execution): each ``application/vnd.plotly.v1+json``
output without an image gets an ``image/png`` rendered by kaleido in the installed Chromium
(:mod:`course_lib.viz.snapshot`). Code cells are untouched, so the source hash that
``scripts/run_notebook.py`` recorded stays valid. Idempotent: a notebook with nothing to add is
not rewritten. ``scripts/run_notebook.py`` does the same after every execution.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's course_lib
from course_lib.viz.snapshot import add_static_images  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "chapters").glob("*.ipynb")) + sorted(
        (ROOT / "chapters" / "solutions").glob("*.ipynb"))
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        before = copy.deepcopy(nb)
        added = add_static_images(nb)
        if nb != before:
            nbformat.write(nb, path)
        print(f"{path}: {added} image(s) added, {path.stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
