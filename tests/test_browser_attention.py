"""The attention widget in a real JupyterLab, driven by headless Chromium (Debian's, never a download).

Starts JupyterLab on 127.0.0.1 (temp root dir, token off, autosave and news off), opens a demo
notebook written to that temp dir (so no repo file is ever rewritten), runs all cells, moves
the layer slider with the keyboard and checks from the page that the heatmap re-rendered: the
SVG ``<image>`` plotly draws the heatmap into gets a new ``href`` and the title names the new
layer. Saves a screenshot (``$ATTENTION_SCREENSHOT`` or the test's temp dir).

Skips with a message when ``/usr/bin/chromium``, JupyterLab or Playwright are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
HEATMAP_IMAGE = ".js-plotly-plot .heatmaplayer image"
LAB_START_S, KERNEL_RUN_S, REDRAW_S = 60, 90, 30  # bounds on every wait

DEMO_CELLS = [
    "import course_lib.config\ncfg = course_lib.config.setup()",
    "from transformers import AutoTokenizer, BertModel\n"
    "from course_lib import weights\n"
    "from course_lib.viz.attention import show_attention\n"
    "path = str(weights.minilm_path())\n"
    "tokenizer = AutoTokenizer.from_pretrained(path)\n"
    "model = BertModel.from_pretrained(path, attn_implementation='eager').eval()\n"
    "batch = tokenizer('The cat sat on the mat because it was tired.', return_tensors='pt')\n"
    "tokens = tokenizer.convert_ids_to_tokens(batch['input_ids'][0])",
    "w = show_attention(model, **batch, tokens=tokens, title='all-MiniLM-L6-v2 (real weights)')\n"
    "w.select(layer=0, head=4)\n"
    "display(w)",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_demo(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 注意力热图控件 · browser demo")]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in DEMO_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "attention_demo.ipynb"
    nbformat.write(nb, path)
    return path


def write_lab_settings(folder: Path) -> None:
    """User settings: no autosave (the test must never write the notebook), no news or update checks."""
    settings = {
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                             "checkForUpdates": False},
    }
    for name, value in settings.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(value))


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server over a temp folder holding the demo notebook; always killed at the end."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium not found at /usr/bin/chromium (Debian: apt-get install -y chromium chromium-driver)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    if shutil.which("jupyter-lab") is None and shutil.which("jupyter") is None:
        pytest.skip("JupyterLab is not installed")
    root, settings, runtime = tmp_path / "root", tmp_path / "settings", tmp_path / "runtime"
    for folder in (root, settings, runtime):
        folder.mkdir()
    write_demo(root)
    write_lab_settings(settings)
    port = free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.root_dir={root}", "--IdentityProvider.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
           "--ServerApp.open_browser=False"]
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + LAB_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start within {LAB_START_S} s:\n{(tmp_path / 'jupyterlab.log').read_text()}")
            time.sleep(0.5)
        yield url, root / "attention_demo.ipynb"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def heatmap_state(page) -> dict:
    """The first heatmap's rendered image href (a data URL of the pixels) and its figure title."""
    return page.evaluate(
        """(sel) => {
            const img = document.querySelector(sel);
            const plot = img && img.closest('.js-plotly-plot');
            const title = plot && plot.querySelector('.gtitle');
            return {href: img ? (img.getAttribute('href') || img.getAttribute('xlink:href')) : null,
                    title: title ? title.textContent : null};
        }""",
        HEATMAP_IMAGE,
    )


def test_widget_rerenders_in_a_real_browser(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    url, notebook = jupyterlab
    before_bytes = notebook.read_bytes()
    screenshot = Path(os.environ.get("ATTENTION_SCREENSHOT", tmp_path / "attention_widget.png"))
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1100})
        try:
            page = context.new_page()
            page.set_default_timeout(KERNEL_RUN_S * 1000)
            page.goto(f"{url}/lab/tree/{notebook.name}", timeout=LAB_START_S * 1000)
            page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')",
                                   timeout=LAB_START_S * 1000)
            page.wait_for_function(  # the kernel is connected before we ask it to run anything
                """() => { const w = window.jupyterapp.shell.currentWidget;
                           return w && w.sessionContext && w.sessionContext.session &&
                                  w.sessionContext.session.kernel &&
                                  w.sessionContext.session.kernel.connectionStatus === 'connected'; }""",
                timeout=LAB_START_S * 1000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_selector(HEATMAP_IMAGE, timeout=KERNEL_RUN_S * 1000)
            page.wait_for_function("(sel) => document.querySelector(sel).getAttribute('href')", arg=HEATMAP_IMAGE,
                                   timeout=REDRAW_S * 1000)
            first = heatmap_state(page)
            assert "layer 0 · head 4" in first["title"], first["title"]
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            assert "Error" not in " ".join(errors.all_inner_texts())

            handle = page.locator(".widget-slider .noUi-handle").first  # the layer slider
            handle.focus()
            handle.press("ArrowRight")
            page.wait_for_function(
                "([sel, old]) => { const i = document.querySelector(sel); return i && i.getAttribute('href') !== old; }",
                arg=[HEATMAP_IMAGE, first["href"]], timeout=REDRAW_S * 1000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.js-plotly-plot .gtitle')].some(t => t.textContent.includes('layer 1 · head 4'))",
                timeout=REDRAW_S * 1000)
            second = heatmap_state(page)
            assert second["href"] != first["href"] and "layer 1 · head 4" in second["title"]

            widget = page.locator(".jp-OutputArea-output .widget-vbox").first
            widget.scroll_into_view_if_needed()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            widget.screenshot(path=str(screenshot))

            # model view: open the tab, click the tile of layer 2 / head 5, land back in the head view
            page.get_by_text("全模型 model view").click()
            grid = page.locator(".js-plotly-plot").nth(1)
            grid.locator(".heatmaplayer image").wait_for(timeout=REDRAW_S * 1000)
            widget.screenshot(path=str(screenshot.with_name(screenshot.stem + "_model_view.png")))
            box = grid.locator(".nsewdrag").first.bounding_box()
            layers, heads = 6, 12  # all-MiniLM-L6-v2
            page.mouse.click(box["x"] + box["width"] * (5 + 0.5) / heads, box["y"] + box["height"] * (2 + 0.5) / layers)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.js-plotly-plot .gtitle')].some(t => t.textContent.includes('layer 2 · head 5'))",
                timeout=REDRAW_S * 1000)
            assert heatmap_state(page)["href"] != second["href"]
        finally:
            context.close()
    assert screenshot.stat().st_size > 10_000, "the screenshot is suspiciously small"
    assert notebook.read_bytes() == before_bytes, "the test must not save the notebook"
