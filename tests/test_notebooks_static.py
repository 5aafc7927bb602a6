"""Every figure in a saved chapter is visible without a kernel (GitHub, nbviewer, nbconvert), issue 26.

A plotly figure is saved as ``application/vnd.plotly.v1+json``, which only JupyterLab draws, and
a widget only as a widget view: both need a static image (or, for a widget, HTML) beside them,
added by ``scripts/run_notebook.py`` / ``scripts/add_static_images.py``
(:mod:`course_lib.viz.snapshot`). The GitHub-style check renders each such output with nbconvert
(HTML, no JavaScript runs) and looks for the image in it.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import io
import json
from pathlib import Path

import nbformat
import pytest

from course_lib.viz import snapshot

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb")) + sorted((CHAPTERS / "solutions").glob("*.ipynb"))
FIGURE = {"data": [{"type": "bar", "x": ["注意力", "b"], "y": [1, 2]}], "layout": {"width": 300, "height": 200}}
TOTAL_LIMIT = 8_000_000


def _ids(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _figure_output(**extra) -> dict:
    return {"output_type": "display_data", "metadata": {}, "data": {snapshot.PLOTLY: copy.deepcopy(FIGURE), **extra}}


def _widget_output(**extra) -> dict:
    return {"output_type": "display_data", "metadata": {},
            "data": {snapshot.WIDGET_VIEW: {"model_id": "m"}, "text/plain": "AttentionWidget(...)", **extra}}


def _notebook(*outputs) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.from_dict(o) for o in outputs])
    return nbformat.v4.new_notebook(cells=[cell])


def _needs_browser():
    if snapshot.find_browser() is None:
        pytest.skip("no Chrome/Chromium to render PNGs (Debian: apt-get install -y chromium)")


# --- the saved chapters -------------------------------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_every_saved_figure_and_widget_has_a_static_copy(path: Path):
    problems = snapshot.missing_static(json.loads(path.read_text(encoding="utf-8")))
    assert not problems, (f"{_ids(path)}: invisible without a kernel: {problems}; for figures run "
                          f"python scripts/add_static_images.py {path.relative_to(ROOT)}, for widgets "
                          f"re-execute it with scripts/run_notebook.py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_github_style_render_shows_an_image_for_every_figure(path: Path):
    """nbconvert HTML (the way GitHub/nbviewer render: no JavaScript runs) of each figure or widget output."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="classic", exclude_input=True)
    nb = nbformat.read(path, as_version=4)
    checked = 0
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if snapshot.PLOTLY not in data and snapshot.WIDGET_VIEW not in data:
                continue
            if snapshot.WIDGET_VIEW in data and not any(m in data for m in snapshot.STATIC):
                continue  # a live FigureWidget: its static figure follows (checked above)
            body, _ = exporter.from_notebook_node(_notebook(out))
            area = body[body.index('class="output_area"'):]
            shows = "<img" in area or (snapshot.PLOTLY not in data and "text/html" in data and "<table" in area)
            assert shows, f"{_ids(path)} cell {index}: nbconvert shows no image for {sorted(data)}"
            checked += 1
    figures = sum(snapshot.PLOTLY in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert checked >= figures


def test_saved_chapters_fit_the_size_budget():
    sizes = {_ids(p): p.stat().st_size for p in NOTEBOOKS}
    assert sum(sizes.values()) <= TOTAL_LIMIT, f"chapters total {sum(sizes.values()) / 1e6:.2f} MB > 8 MB"
    assert max(sizes.values()) <= 1_000_000, max(sizes.items(), key=lambda kv: kv[1])


# --- the checks themselves ------------------------------------------------------------------------
def test_missing_static_flags_bare_figures_and_widgets():
    assert snapshot.missing_static(_notebook(_figure_output())) == ["cell 0: a plotly figure with no image/png"]
    assert len(snapshot.missing_static(_notebook(_widget_output()))) == 1
    assert len(snapshot.missing_static(_notebook(_figure_output(**{"image/png": "iVBO"}), _widget_output()))) == 1
    assert snapshot.missing_static(_notebook(_figure_output(**{"image/png": "iVBO"}))) == []
    assert snapshot.missing_static(_notebook(_widget_output(**{"text/html": "<table></table>"}))) == []
    # a live FigureWidget followed by its final static figure in the same cell
    assert snapshot.missing_static(_notebook(_widget_output(), _figure_output(**{"image/svg+xml": "<svg/>"}))) == []
    # a widget whose bundle carries a plotly figure still needs that figure's image
    assert len(snapshot.missing_static(_notebook(_widget_output(**{snapshot.PLOTLY: FIGURE})))) == 1


def test_figure_pngs_rejects_bad_input():
    with pytest.raises(TypeError, match="figures"):
        snapshot.figure_pngs(FIGURE)
    with pytest.raises(ValueError, match="scale"):
        snapshot.figure_pngs([FIGURE], scale=0)
    assert snapshot.figure_pngs([]) == []


def test_no_browser_is_a_clear_error_and_run_notebook_only_warns(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))
    assert snapshot.find_browser() is None
    with pytest.raises(snapshot.NoBrowserError, match="BROWSER_PATH"):
        snapshot.figure_pngs([FIGURE])
    spec = importlib.util.spec_from_file_location("run_notebook", ROOT / "scripts" / "run_notebook.py")
    run_notebook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_notebook)
    nb = _notebook(_figure_output())
    run_notebook.add_images(nb, tmp_path / "x.ipynb")
    assert "WARNING" in capsys.readouterr().err and "image/png" not in nb.cells[0].outputs[0].data


def test_add_static_images_renders_the_figure_once():
    _needs_browser()
    from PIL import Image

    nb = _notebook(_figure_output(), _widget_output(**{snapshot.PLOTLY: FIGURE}))
    assert snapshot.add_static_images(nb) == 2
    widget = nb.cells[0].outputs[1].data
    assert snapshot.PLOTLY not in widget and "image/png" in widget  # the widget is the interactive view
    image = Image.open(io.BytesIO(base64.b64decode(nb.cells[0].outputs[0].data["image/png"])))
    assert image.format == "PNG" and image.size == (300, 200) and image.mode == "P"  # layout size, palette
    pixels = image.convert("RGB")
    assert len(set(pixels.getdata())) > 3  # drew something: bars, axes, text on white
    before = copy.deepcopy(nb)
    assert snapshot.add_static_images(nb) == 0 and nb == before  # idempotent
    assert snapshot.missing_static(nb) == []


def test_attention_widget_displays_its_head_view_as_a_static_figure():
    import torch

    from course_lib.viz.attention import attention_widget

    maps = [torch.softmax(torch.randn(1, 2, 4, 4), dim=-1) for _ in range(2)]
    w = attention_widget(maps, list("abcd")).select(layer=1, head=1)
    bundle = w._repr_mimebundle_()
    assert snapshot.WIDGET_VIEW in bundle  # JupyterLab still gets the live widget
    saved = bundle[snapshot.PLOTLY]
    assert saved["data"][0]["z"] == w.figure().to_dict()["data"][0]["z"]
    assert saved["layout"]["title"]["text"] == "layer 1 · head 1"
