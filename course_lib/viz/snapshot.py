"""Static PNG snapshots of the plotly figures saved in a notebook, for viewers that run no JavaScript.

A saved plotly figure is ``application/vnd.plotly.v1+json``: JupyterLab draws it, but GitHub's
notebook view, nbviewer without JS and ``nbconvert`` show nothing. :func:`add_static_images`
adds an ``image/png`` beside every such figure (the same output, so JupyterLab still picks the
interactive one: its plotly renderer ranks above images), rendered by kaleido in a Chrome or
Chromium that is already installed (``$BROWSER_PATH``, else ``chromium`` / ``google-chrome`` on
``PATH``; nothing is ever downloaded). PNGs are quantised to a 256-colour palette (plotly's flat
colours and colour scales survive it; the file is ~4x smaller). :func:`missing_static` lists the
outputs a static viewer would show as empty space (tests/test_notebooks_static.py).
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import shutil

PLOTLY = "application/vnd.plotly.v1+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
IMAGES = ("image/png", "image/svg+xml")
STATIC = IMAGES + ("text/html",)  # what a viewer without JavaScript can show for a widget
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
PALETTE_COLORS = 256


class NoBrowserError(RuntimeError):
    """No Chrome/Chromium on this machine, so kaleido cannot render (it is never downloaded)."""


def find_browser() -> str | None:
    """The Chrome/Chromium kaleido should use: ``$BROWSER_PATH`` if set, else the first of :data:`BROWSERS` on PATH."""
    if os.environ.get("BROWSER_PATH"):
        path = os.environ["BROWSER_PATH"]
        return path if os.access(path, os.X_OK) else None
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    return None


def _palette_png(png: bytes) -> bytes:
    """``png`` flattened onto white and quantised to :data:`PALETTE_COLORS` colours (deterministic bytes)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert("RGB")
    out = io.BytesIO()
    flat.quantize(colors=PALETTE_COLORS, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
    return out.getvalue()


def figure_pngs(figures: list[dict], scale: float = 1.0) -> list[bytes]:
    """Render plotly figure dicts (``{"data": …, "layout": …}``) to palette PNGs, in one browser session.

    The size is the figure's ``layout.width``/``height`` (kaleido's 700×500 where unset) times
    ``scale``. MathJax is off (kaleido would fetch it from a CDN). Raises :class:`NoBrowserError`
    without Chrome/Chromium; call it outside a running event loop (a script, not a kernel cell).
    """
    if not isinstance(figures, list) or not all(isinstance(f, dict) and "data" in f for f in figures):
        raise TypeError("figures must be a list of plotly figure dicts with a 'data' key")
    if not isinstance(scale, (int, float)) or not 0 < scale <= 4:
        raise ValueError(f"scale must be a number in (0, 4], got {scale!r}")
    if not figures:
        return []
    browser = find_browser()
    if browser is None:
        raise NoBrowserError(f"no Chrome/Chromium found (set BROWSER_PATH or put one of {', '.join(BROWSERS)} "
                             "on PATH; Debian/Ubuntu: apt-get install chromium)")
    import kaleido

    async def render() -> list[bytes]:
        async with kaleido.Kaleido(n=1, mathjax=False, path=browser) as k:
            return [await k.calc_fig(f, opts={"format": "png", "scale": scale}) for f in figures]

    return [_palette_png(png) for png in asyncio.run(render())]


def _outputs(nb):
    for index, cell in enumerate(nb["cells"]):
        for position, out in enumerate(cell.get("outputs", [])):
            yield index, position, cell, out


def add_static_images(nb, scale: float = 1.0) -> int:
    """Add an ``image/png`` to every output holding a plotly figure but no image; returns how many were added.

    A widget's output (an attention widget saves its current head view as a plotly figure beside
    the widget view) keeps only the PNG: the widget is the interactive view, and a 256-token
    heatmap's JSON alone weighs ~370 kB. Idempotent (an output that has an image only loses a
    widget's figure JSON); code cells are untouched, so the recorded source hash of
    ``scripts/run_notebook.py`` stays valid.
    """
    todo = [out for _, _, _, out in _outputs(nb)
            if PLOTLY in out.get("data", {}) and not any(m in out["data"] for m in IMAGES)]
    pngs = figure_pngs([dict(out["data"][PLOTLY]) for out in todo], scale)
    for out, png in zip(todo, pngs):
        out["data"]["image/png"] = base64.b64encode(png).decode("ascii")
    for _, _, _, out in _outputs(nb):
        data = out.get("data", {})
        if WIDGET_VIEW in data and PLOTLY in data and any(m in data for m in IMAGES):
            del data[PLOTLY]
    return len(todo)


def missing_static(nb) -> list[str]:
    """Outputs a viewer without JavaScript shows as empty space, as ``"cell N: why"`` lines.

    A plotly figure needs an image in its own output; a widget view needs an image or HTML in
    its own output, or a later output of the same cell with an image (a live ``FigureWidget``
    followed by its final static figure).
    """
    problems = []
    for index, position, cell, out in _outputs(nb):
        data = out.get("data", {})
        if PLOTLY in data and not any(m in data for m in IMAGES):
            problems.append(f"cell {index}: a plotly figure with no image/png")
        elif WIDGET_VIEW in data and not any(m in data for m in STATIC):
            later = cell["outputs"][position + 1:]
            if not any(m in o.get("data", {}) for o in later for m in IMAGES):
                text = "".join(data.get("text/plain", ""))[:60]
                problems.append(f"cell {index}: a widget ({text!r}) with no static image or HTML")
    return problems
