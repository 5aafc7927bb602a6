"""Regenerate every figure in ``Fig/``: ``python -m course_lib.figures [--out DIR] [NAME ...]``.

Figures are drawn from code, never by hand, so they cannot drift from the library. Every module
in :mod:`course_lib.viz` that defines ``FIGURES = {"name.png": draw}`` contributes; ``draw(path)``
writes one PNG.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

import course_lib.viz
from course_lib.viz.static import matplotlib_cjk

FIG_DIR = Path(__file__).resolve().parent.parent / "Fig"


def all_figures() -> dict[str, Callable[[Path], object]]:
    """``{file name: draw}`` gathered from the ``FIGURES`` tables of the :mod:`course_lib.viz` modules."""
    found: dict[str, Callable[[Path], object]] = {}
    for info in sorted(pkgutil.iter_modules(course_lib.viz.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"course_lib.viz.{info.name}")
        for name, draw in getattr(module, "FIGURES", {}).items():
            if name in found:
                raise ValueError(f"figure {name!r} is defined twice (second time in {module.__name__})")
            found[name] = draw
    return found


def generate(out_dir: str | Path = FIG_DIR, names: list[str] | None = None) -> list[Path]:
    """Draw the selected figures (all by default) into ``out_dir`` and return their paths."""
    figures = all_figures()
    unknown = sorted(set(names or []) - set(figures))
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; known: {sorted(figures)}")
    matplotlib_cjk(required=True)  # no CJK font: one clear error instead of a warning per missing glyph
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or sorted(figures):
        path = out_dir / name
        figures[name](path)
        written.append(path)
    return written


def main() -> None:
    """Command line: regenerate every ``Fig/`` PNG (or the ones named)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="only these figure files")
    parser.add_argument("--out", default=str(FIG_DIR), help="output folder (default: the repo's Fig/)")
    args = parser.parse_args()
    for path in generate(args.out, args.names):
        print(path)


if __name__ == "__main__":
    main()
