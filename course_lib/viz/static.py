"""Static matplotlib figures for ``Fig/``: a CJK-capable font and a consistent look."""

from __future__ import annotations

import warnings
from pathlib import Path

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "Source Han Sans SC", "SimHei",
             "Microsoft YaHei", "PingFang SC")
INSTALL_CJK_FONT = ("install one: Debian/Ubuntu `sudo apt-get install fonts-noto-cjk` (what .ci/run does), "
                    "Fedora `sudo dnf install google-noto-sans-cjk-fonts`, Homebrew `brew install --cask "
                    "font-noto-sans-cjk`; macOS and Windows already ship PingFang SC / Microsoft YaHei. Then delete "
                    "matplotlib's font cache (`python -c \"import matplotlib; print(matplotlib.get_cachedir())\"`) "
                    "so the new font is found")
_warned = False


def missing_cjk_font_message() -> str:
    """The message for a machine without any of :data:`CJK_FONTS`, saying what to install."""
    return (f"no CJK font found (looked for {', '.join(CJK_FONTS)}), so Chinese labels would be drawn as "
            f"boxes; {INSTALL_CJK_FONT}")


def matplotlib_cjk(required: bool = False):
    """Return ``matplotlib.pyplot`` set up to draw Chinese labels (Agg backend, no screen needed).

    Uses the first installed font of :data:`CJK_FONTS`. Without one, Chinese glyphs would render
    as boxes: ``required=True`` (regenerating ``Fig/``, :mod:`course_lib.figures`) raises
    ``RuntimeError`` naming what to install; otherwise (a PNG saved from a notebook) it warns once
    and silences matplotlib's per-glyph "Glyph … missing" warnings.
    """
    global _warned
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    chosen = [name for name in CJK_FONTS if name in installed]
    if not chosen:
        if required:
            raise RuntimeError(missing_cjk_font_message())
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning)
        if not _warned:
            warnings.warn(missing_cjk_font_message(), stacklevel=2)
            _warned = True
    plt.rcParams["font.sans-serif"] = chosen + ["DejaVu Sans"]
    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["axes.unicode_minus"] = False
    return plt


def save(fig, path: str | Path, dpi: int = 150) -> Path:
    """Save a matplotlib figure as PNG (with stable metadata so re-runs give the same bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
