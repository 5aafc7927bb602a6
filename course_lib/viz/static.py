"""Static matplotlib figures for ``Fig/``: a CJK-capable font and a consistent look.

The Chinese labels need a CJK font. A system one is used when installed (:data:`CJK_FONTS`); otherwise
the Noto Sans SC that the pinned PyPI package ``zhplot`` ships (``requirements.txt``; the font is under
the SIL Open Font License) is registered with matplotlib at run time, so ``pip install -r
requirements.txt`` alone is enough to draw ``Fig/``.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "Source Han Sans SC", "SimHei",
             "Microsoft YaHei", "PingFang SC", "Noto Sans SC")
PACKAGED_FONT = ("zhplot", "fonts/NotoSansSC-Regular.ttf")  # (PyPI package, the font file inside it)
INSTALL_CJK_FONT = ("`pip install -r requirements.txt` brings one (the package zhplot ships Noto Sans SC), or "
                    "install a system font: Debian/Ubuntu `sudo apt-get install fonts-noto-cjk` (what .ci/run does), "
                    "Fedora `sudo dnf install google-noto-sans-cjk-fonts`, Homebrew `brew install --cask "
                    "font-noto-sans-cjk`; macOS and Windows already ship PingFang SC / Microsoft YaHei. Then delete "
                    "matplotlib's font cache (`python -c \"import matplotlib; print(matplotlib.get_cachedir())\"`) "
                    "so the new font is found")
_warned = False


def missing_cjk_font_message() -> str:
    """The message for a machine without any of :data:`CJK_FONTS` nor :data:`PACKAGED_FONT`, saying what to install."""
    return (f"no CJK font found (looked for {', '.join(CJK_FONTS)} and the PyPI package {PACKAGED_FONT[0]}), "
            f"so Chinese labels would be drawn as boxes; {INSTALL_CJK_FONT}")


def packaged_cjk_font() -> Path | None:
    """The font file of :data:`PACKAGED_FONT` when that package is installed, else None.

    Found with :func:`importlib.util.find_spec`, without importing the package (importing ``zhplot``
    would change matplotlib's settings).
    """
    package, file = PACKAGED_FONT
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / file
    return path if path.is_file() else None


def matplotlib_cjk(required: bool = False):
    """Return ``matplotlib.pyplot`` set up to draw Chinese labels (Agg backend, no screen needed).

    Uses the first installed font of :data:`CJK_FONTS`; without one, registers :func:`packaged_cjk_font`
    with matplotlib (``fontManager.addfont``) and uses it. Without either, Chinese glyphs would render
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
    packaged = None if chosen else packaged_cjk_font()
    if packaged is not None:
        if str(packaged) not in {f.fname for f in font_manager.fontManager.ttflist}:
            font_manager.fontManager.addfont(str(packaged))
        chosen = [font_manager.FontProperties(fname=packaged).get_name()]
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
