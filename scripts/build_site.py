"""Build the course website: every chapter with its saved outputs, searchable, fully offline.

    python scripts/build_site.py                # -> site/  (~20 s quiet, ≤ 2 min on 2 busy cores)
    python -m http.server -d site 8000          # then browse http://127.0.0.1:8000

(Opening ``site/index.html`` straight from disk shows every page too; only search needs the HTTP server,
since browsers run no web worker from ``file://``.)

mkdocs + mkdocs-material + mkdocs-jupyter (pinned in requirements.txt) over a staging folder
(``build/site_docs``, rebuilt each time) that this script fills from the repository:

- ``index.md``: the README, its chapter names linked to the chapter pages;
- ``chapters/NN_*.ipynb`` and, in their own section, ``solutions/NN_*.ipynb``, as saved (nothing
  is executed). Each saved plotly figure becomes an interactive ``<div>`` drawn by the bundled
  plotly.js; a widget (it needs a kernel) shows the static image saved beside it; an inline
  code name of a chapter (`` `03_llama` ``) links to that chapter's page;
- ``assets/``: plotly.js from the plotly package and MathJax 3 from ``django-static-mathjax`` (files only);
  fonts are the system's (``font: false``), so the pages request nothing outside the site;
- search (lunr) with jieba segmenting Chinese, so a search for 注意力 finds the chapters.

``tests/test_site.py`` builds it into a temporary folder and checks it in Chromium.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STATIC = ("image/png", "image/svg+xml", "text/html")
MATHJAX_URL = "../assets/mathjax-config.js"  # every notebook page is one level deep
# nbconvert's page loads MATHJAX_URL, then calls MathJax 2's ``MathJax.Hub.Config``: this file configures
# MathJax 3 (nbconvert's delimiters), gives it a do-nothing ``Hub`` and loads it from the site
MATHJAX_CONFIG = """window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
        processEscapes: true, processEnvironments: true, tags: "ams"},
  Hub: {Config() {}, Queue() {}},
};
(function () {
  const script = document.createElement("script");
  script.src = new URL("mathjax/tex-chtml.js", document.currentScript.src).href;
  script.async = true;
  document.head.appendChild(script);
})();
"""
# lunr's word separators plus Chinese punctuation and the zero-width space jieba puts between words
SEARCH_SEPARATOR = r'[\s\u200b\-_,:!=\[\]()"`/，。；：、？！（）]+|\.(?!\d)|&[lg]t;|(?!\b)(?=[A-Z][a-z])'
# pages with figures: plotly.js in <head> (the figures' inline scripts call it while the page parses)
PAGE_HEAD = """{% extends "base.html" %}
{% block extrahead %}{% if page and page.file.src_uri in config.extra.plotly_pages %}
<script src="{{ 'assets/plotly.min.js' | url }}"></script>{% endif %}{% endblock %}
"""


def chapter_names() -> list[str]:
    """Stems of the chapter notebooks, in course order (file-name order)."""
    return [p.stem for p in sorted((ROOT / "chapters").glob("*.ipynb"))]


def link_chapters(markdown: str, names: list[str], prefix: str) -> str:
    """Turn an inline code name of a chapter (`` `03_llama` `` or `` `chapters/03_llama.ipynb` ``) into a link."""
    pattern = re.compile(r"(?<!\[)`(?:chapters/)?(" + "|".join(map(re.escape, names)) + r")(?:\.ipynb)?`")
    return pattern.sub(lambda m: f"[`{m.group(1)}`]({prefix}{m.group(1)}.ipynb)", markdown) if names else markdown


def web_outputs(nb: nbformat.NotebookNode, stem: str) -> int:
    """Make a saved notebook's outputs web-ready in place; returns the number of interactive plotly figures.

    A plotly figure becomes ``text/html`` (a div and ``Plotly.newPlot``; the saved PNG is dropped,
    the page draws the figure itself); a widget view with a static copy beside it loses the view
    (without a kernel it would draw nothing) so the copy shows.
    """
    import plotly.io as pio

    figures = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY in data:
                figures += 1
                fig = dict(data[PLOTLY])
                page = pio.to_html(fig, include_plotlyjs=False, full_html=False, validate=False,
                                   div_id=f"fig-{stem}-{figures}", config=fig.get("config"))
                out["data"] = {"text/html": page}
            elif WIDGET_VIEW in data and any(m in data for m in STATIC):
                del data[WIDGET_VIEW]
    return figures


def stage_notebook(source: Path, target: Path, names: list[str], prefix: str) -> int:
    """Copy one notebook into the staging folder, web-ready; returns its number of plotly figures."""
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = link_chapters(cell.source, names, prefix)
    figures = web_outputs(nb, source.stem)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return figures


def copy_assets(docs: Path) -> None:
    """plotly.js and MathJax into ``docs/assets``; the README's and chapters' images beside the pages."""
    import plotly

    assets = docs / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", assets / "plotly.min.js")
    spec = importlib.util.find_spec("mathjax")
    if spec is None:
        raise SystemExit("MathJax is missing: pip install -r requirements.txt (django-static-mathjax)")
    es5 = Path(spec.submodule_search_locations[0]) / "static" / "mathjax" / "es5"
    skip = lambda folder, names: [n for n in names if (Path(folder) == es5 and n.endswith(".js") and n != "tex-chtml.js")
                                  or (Path(folder).name == "output" and n == "svg")]
    shutil.copytree(es5, assets / "mathjax", ignore=skip)  # tex-chtml.js and what it loads on demand
    (assets / "mathjax-config.js").write_text(MATHJAX_CONFIG, encoding="utf-8")
    shutil.copytree(ROOT / "Fig", docs / "Fig")
    shutil.copytree(ROOT / "docs" / "screenshots", docs / "docs" / "screenshots")


def config(docs: Path, site: Path, overrides: Path, chapters: list[str], solutions: list[str],
           plotly_pages: list[str], cache: Path) -> dict:
    """The mkdocs configuration (written as JSON, which is YAML); ``plotly_pages`` (source paths) load plotly.js."""
    return {
        "site_name": "手撕大模型 · LLMs by Hand",
        "docs_dir": str(docs), "site_dir": str(site), "use_directory_urls": False,
        "theme": {"name": "material", "language": "zh", "font": False, "custom_dir": str(overrides),
                  "features": ["navigation.footer", "navigation.top", "search.highlight", "content.code.copy"]},
        "nav": [{"首页 (home)": "index.md"},
                {"章节 (chapters)": [f"chapters/{n}.ipynb" for n in chapters]},
                {"练习答案 (solutions)": [f"solutions/{n}.ipynb" for n in solutions]}],
        "markdown_extensions": ["tables", "attr_list", "md_in_html", "pymdownx.superfences"],
        "plugins": [
            {"search": {"lang": ["zh", "en"], "separator": SEARCH_SEPARATOR}},
            {"mkdocs-jupyter": {"include": ["*.ipynb"], "execute": False, "include_source": False,
                                "ignore_h1_titles": False, "custom_mathjax_url": MATHJAX_URL, "toc_depth": 2,
                                "cache_dir": str(cache)}},  # converted pages, keyed by notebook content
        ],  # no "offline" plugin: it loads its search shim from unpkg.com; serve the folder over HTTP instead
        "extra": {"plotly_pages": plotly_pages},
        "validation": {"links": {"not_found": "info", "unrecognized_links": "info"}},
    }


def stage(work: Path) -> tuple[Path, dict[str, int]]:
    """Fill ``work`` with the docs folder, theme overrides and mkdocs.yml; returns the config path and
    ``{page path in the site: plotly figures on it}``."""
    if work.exists():
        shutil.rmtree(work)
    docs, overrides = work / "docs", work / "overrides"
    overrides.mkdir(parents=True)
    (overrides / "main.html").write_text(PAGE_HEAD, encoding="utf-8")
    names = chapter_names()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    docs.mkdir()
    (docs / "index.md").write_text(link_chapters(readme, names, "chapters/"), encoding="utf-8")
    figures = {}
    for name in names:
        figures[f"chapters/{name}.html"] = stage_notebook(ROOT / "chapters" / f"{name}.ipynb",
                                                          docs / "chapters" / f"{name}.ipynb", names, "")
    solutions = [p.stem for p in sorted((ROOT / "chapters" / "solutions").glob("*.ipynb"))]
    for name in solutions:
        figures[f"solutions/{name}.html"] = stage_notebook(ROOT / "chapters" / "solutions" / f"{name}.ipynb",
                                                           docs / "solutions" / f"{name}.ipynb", names,
                                                           "../chapters/")
    copy_assets(docs)
    path = work / "mkdocs.yml"
    path.write_text(json.dumps(config(docs, work / "site", overrides, names, solutions,
                                      [page.replace(".html", ".ipynb") for page, n in figures.items() if n],
                                      work.parent / "mkdocs-jupyter-cache"), ensure_ascii=False,
                               indent=1), encoding="utf-8")
    return path, figures


def build(out: Path, work: Path | None = None) -> dict[str, int]:
    """Stage and build the site into ``out``; returns ``{page: plotly figures}`` (what the pages must draw)."""
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config

    work = work or ROOT / "build" / "site_docs"
    path, figures = stage(work)
    cfg = load_config(str(path), site_dir=str(out.resolve()))
    mkdocs_build(cfg)
    drop_anchorless_sections(out / "search" / "search_index.json")
    return figures


def drop_anchorless_sections(index_path: Path) -> int:
    """Drop the search entries of sections whose heading got no anchor; returns how many went.

    A heading with only Chinese in it (``## 小结``) gets an empty id from nbconvert, so its section's
    entry has the page's own location. Material's search worker then has two entries for one location
    and throws while highlighting ("Cannot read properties of undefined"), so every query that matches
    such a section returns nothing. The page's own entry keeps the whole text, so nothing becomes
    unsearchable.
    """
    index = json.loads(index_path.read_text(encoding="utf-8"))
    seen, kept = set(), []
    for doc in index["docs"]:
        if "#" not in doc["location"] and doc["location"] in seen:
            continue
        seen.add(doc["location"])
        kept.append(doc)
    dropped = len(index["docs"]) - len(kept)
    index["docs"] = kept
    index_path.write_text(json.dumps(index, ensure_ascii=False), encoding="utf-8")
    return dropped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "site", help="where the site goes (default: site/)")
    args = parser.parse_args()
    start = time.perf_counter()
    figures = build(args.out)
    print(f"built {args.out} in {time.perf_counter() - start:.0f} s: {len(figures) + 1} pages, "
          f"{sum(figures.values())} interactive figures; open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
