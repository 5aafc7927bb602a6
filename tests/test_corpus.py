"""The pinned stdlib docstring corpus: stable, unique, real text."""

from __future__ import annotations

import pytest

from course_lib.corpus import stdlib_docstrings, stdlib_module_names


def test_pinned_modules_give_thousands_of_unique_docstrings():
    modules = stdlib_module_names()
    assert len(modules) > 300 and "json" in modules and "collections.abc" in modules
    docs = stdlib_docstrings()
    assert len(docs) > 4000
    assert len({d.id for d in docs}) == len(docs) and len({d.text for d in docs}) == len(docs)
    by_id = {d.id: d for d in docs}
    assert by_id["json.dumps"].kind == "function" and "JSON" in by_id["json.dumps"].text
    subset = [d.id for d in stdlib_docstrings(["json", "csv"])]     # fewer modules, fewer duplicates dropped
    assert set(subset) >= {d.id for d in docs if d.module in ("json", "csv")} and "csv.Sniffer" in subset


def test_bad_input():
    with pytest.raises(ValueError, match="min_chars must be positive"):
        stdlib_docstrings(["json"], min_chars=0)
