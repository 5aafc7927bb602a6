"""The RAG corpus: documents with ids, titles and sources, from three places that ship with the course.

- ``python_topics()``: the Python documentation's topics (``pydoc_data.topics``, what ``help("assert")``
  shows), ids ``topic:<key>``;
- ``stdlib_docs()``: the standard library's docstrings (:func:`course_lib.corpus.stdlib_docstrings`,
  pinned module list), ids are dotted paths such as ``json.dumps``;
- ``notebook_prose()``: the markdown cells of the course's own notebooks, ids ``nb:<stem>#<cell>``.

Everything is local and deterministic, so a question set can label document ids once for all machines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from course_lib.corpus import stdlib_docstrings

CHAPTERS = Path(__file__).resolve().parents[2] / "chapters"
SOURCES = ("topics", "stdlib", "notebooks")


@dataclass(frozen=True)
class Document:
    """One document of the RAG corpus: id, title, which collection it came from, and its text."""
    id: str
    title: str
    source: str   # "topics", "stdlib" or "notebooks"
    text: str


def check_documents(docs: Iterable[Document]) -> list[Document]:
    """A non-empty list of documents with text and distinct ids (``ValueError`` naming the culprit)."""
    docs = list(docs)
    if not docs:
        raise ValueError("the corpus is empty: pass at least one Document")
    seen = set()
    for d in docs:
        if not isinstance(d, Document):
            raise TypeError(f"documents must be Document objects, got {type(d).__name__}")
        if not isinstance(d.text, str) or not d.text.strip():
            raise ValueError(f"document {d.id!r} has no text")
        if d.id in seen:
            raise ValueError(f"document id {d.id!r} appears twice")
        seen.add(d.id)
    return docs


def python_topics() -> list[Document]:
    """The ~80 topics of the Python reference documentation (``pydoc_data.topics.topics``)."""
    from pydoc_data.topics import topics

    return [Document(f"topic:{key}", key, "topics", text.strip()) for key, text in sorted(topics.items())
            if text.strip()]


def stdlib_docs(modules: list[str] | None = None) -> list[Document]:
    """The standard library's docstrings as documents: id = title = dotted path (``json.dumps``)."""
    return [Document(d.id, d.id, "stdlib", d.text) for d in stdlib_docstrings(modules)]


def notebook_prose(folder: str | Path = CHAPTERS) -> list[Document]:
    """Markdown cells of ``folder/*.ipynb`` (sorted by name): id ``nb:<stem>#<cell index>``, title = the notebook's title."""
    docs = []
    for path in sorted(Path(folder).glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        title = path.stem
        for i, cell in enumerate(cells):
            if cell["cell_type"] != "markdown":
                continue
            text = "".join(cell["source"]).strip()
            if i == 0 and text.startswith("#"):
                title = text.splitlines()[0].lstrip("# ").strip() or path.stem
            if text:
                docs.append(Document(f"nb:{path.stem}#{i}", title, "notebooks", text))
    return docs


_LOADERS = {"topics": python_topics, "stdlib": stdlib_docs, "notebooks": notebook_prose}


def load_corpus(sources: Iterable[str] = SOURCES, limit: int | None = None) -> list[Document]:
    """Documents of ``sources`` in the order given (each source in its own stable order), the first ``limit`` of each."""
    sources = list(sources)
    unknown = [s for s in sources if s not in _LOADERS]
    if unknown or not sources:
        raise ValueError(f"sources must be a non-empty subset of {SOURCES}, got {sources!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    docs = [d for s in sources for d in _LOADERS[s]()[:limit]]
    return check_documents(docs)
