"""Retrieval inspector (chapter 09): a query box → ranked chunks with every retriever's score, query terms marked.

``inspector(bm25, dense, hybrid)`` returns an ipywidgets ``VBox`` (with a static HTML copy for GitHub); ``inspect_html(query, ...)`` is the
HTML it shows (testable without a browser). Scores: BM25 and cosine for every chunk that the
hybrid ranking returns, so a learner sees why RRF put a chunk where it is.
"""

from __future__ import annotations

import html
import re

import ipywidgets as widgets

from course_lib.rag.bm25 import tokenize


def highlight(text: str, terms: set[str]) -> str:
    """HTML-escaped ``text`` with every word whose lower case is in ``terms`` wrapped in ``<mark>``."""
    out, last = [], 0
    for m in re.finditer(r"\w+", text):
        out.append(html.escape(text[last:m.start()]))
        word = html.escape(m.group())
        out.append(f"<mark>{word}</mark>" if m.group().lower() in terms else word)
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def inspect_html(query: str, bm25, dense, hybrid, k: int = 5, max_chars: int = 400) -> str:
    """An HTML table: rank, chunk id, RRF / BM25 / cosine scores, the chunk text with query terms marked."""
    hits = hybrid.search(query, k)
    bm = dict(zip([c.id for c in bm25.chunks], bm25.index.scores(bm25.tokenizer(query))))
    cos = dict(zip([c.id for c in dense.chunks], dense.score_all(query)))
    terms = set(tokenize(query))
    rows = ["<tr><th>#</th><th>chunk</th><th>RRF</th><th>BM25</th><th>cosine</th><th>text</th></tr>"]
    for rank, p in enumerate(hits, start=1):
        text = p.text if len(p.text) <= max_chars else p.text[:max_chars] + " …"
        rows.append(f"<tr><td>{rank}</td><td><code>{html.escape(p.id)}</code></td><td>{p.score:.4f}</td>"
                    f"<td>{bm[p.id]:.2f}</td><td>{cos[p.id]:.3f}</td>"
                    f"<td style='white-space:pre-wrap;text-align:left'>{highlight(text, terms)}</td></tr>")
    return "<table style='font-size:12px'>" + "".join(rows) + "</table>"


class RetrievalInspector(widgets.VBox):
    """A query box over the :func:`inspect_html` table; displaying it also saves the table as HTML.

    JupyterLab draws the live widget (its renderer ranks above HTML); GitHub, nbviewer and
    nbconvert, which cannot run widgets, show the table of the query shown at display time.
    """

    def _repr_mimebundle_(self, **kwargs):
        """The widget view plus the current query and table as ``text/html``."""
        bundle = super()._repr_mimebundle_(**kwargs)
        box, table = self.children
        bundle["text/html"] = f"<p>query: <code>{html.escape(box.value)}</code></p>{table.value}"
        return bundle


def inspector(bm25, dense, hybrid, query: str = "How do I pretty-print JSON?", k: int = 5) -> RetrievalInspector:
    """A text box and the :func:`inspect_html` table, refreshed when the query is submitted."""
    box = widgets.Text(value=query, description="query", continuous_update=False,
                       layout=widgets.Layout(width="80%"))
    out = widgets.HTML(inspect_html(query, bm25, dense, hybrid, k))

    def refresh(change):
        if change["new"].strip():
            out.value = inspect_html(change["new"], bm25, dense, hybrid, k)

    box.observe(refresh, names="value")
    return RetrievalInspector([box, out])
