"""Static matplotlib figures for ``Fig/``: a CJK-capable font and a consistent look."""

from __future__ import annotations

from pathlib import Path

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "Source Han Sans SC", "SimHei",
             "Microsoft YaHei", "PingFang SC")


def matplotlib_cjk():
    """Return ``matplotlib.pyplot`` set up to draw Chinese labels (Agg backend, no screen needed).

    Uses the first installed font of :data:`CJK_FONTS`; without one, Chinese glyphs render as
    boxes (Debian/Ubuntu: ``apt-get install fonts-noto-cjk``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    chosen = [name for name in CJK_FONTS if name in installed]
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
