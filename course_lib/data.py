"""Corpora that ship with Python itself, so no chapter downloads data (§4).

- :func:`python_docs_topics` — the 79 help topics of the Python documentation
  (``pydoc_data.topics``, ~465k characters of real English technical prose and code).
- :func:`python_docs_text` — the same topics joined into one training text.
"""

from __future__ import annotations


def python_docs_topics() -> dict[str, str]:
    """``{topic name: text}`` from ``pydoc_data.topics`` (sorted by name, so the order is stable)."""
    from pydoc_data.topics import topics

    return {name: topics[name] for name in sorted(topics)}


def python_docs_text(max_chars: int | None = None) -> str:
    """All topics joined with blank lines; cut to ``max_chars`` when given."""
    if max_chars is not None and max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    text = "\n\n".join(python_docs_topics().values())
    return text if max_chars is None else text[:max_chars]
