"""The pinned stdlib docstring corpus: stable, unique, real text."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pytest

from course_lib.corpus import (
    PINNED,
    passages,
    read_pinned,
    sentences,
    split_sentences,
    stdlib_docstrings,
    stdlib_module_names,
    stdlib_passages,
)

ROOT = Path(__file__).resolve().parent.parent


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


def test_pinned_file_equals_a_fresh_collection_in_a_clean_interpreter():
    """``python -I`` (no site hooks, no ipykernel patches) collecting live gives exactly the pinned records."""
    header, pinned = read_pinned()
    if header["python"] != platform.python_version():
        pytest.skip(f"the pinned corpus was made on Python {header['python']}, this is {platform.python_version()}: "
                    "live docstrings may differ; the pinned file is what every version reads")
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from dataclasses import astuple; "
            "from course_lib.corpus import collect_docstrings; "
            "print(json.dumps([astuple(d) for d in collect_docstrings()]))")
    out = subprocess.run([sys.executable, "-I", "-c", code, str(ROOT)], capture_output=True, text=True, timeout=120, check=True)
    fresh = [tuple(d) for d in json.loads(out.stdout)]
    assert fresh == [astuple(d) for d in pinned]
    assert header["docs"] == len(pinned) > 7000


def test_defaults_are_the_deduplicated_pinned_texts():
    docs = stdlib_docstrings()
    assert len(docs) == 4551 and sum(len(d.text) for d in docs) == 1_152_674   # the corpus of chapters 07–09
    ids = {d.id for d in docs}
    assert {"getpass.getpass", "inspect.getfile", "curses.has_key"} <= ids   # patched or shadowed live
    assert stdlib_docstrings(min_chars=1)[: len(docs)] != docs                          # shorter texts join in order


def test_unknown_module_and_corrupt_file(tmp_path):
    with pytest.raises(ValueError, match="not in the pinned corpus"):
        stdlib_docstrings(["numpy"])
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(PINNED.read_bytes()[:5000])
    with pytest.raises(ValueError, match="missing or corrupt|truncated"):
        read_pinned(bad)


def test_passages_split_sentences_and_pair_neighbours():
    text = "First sentence here. Second one follows! Third? yes.\n\n  Another   paragraph.\nSame paragraph."
    assert sentences(text) == [["First sentence here.", "Second one follows!", "Third? yes."],
                               ["Another paragraph.", "Same paragraph."]]
    got = passages([text, text], window=2, min_chars=12)
    assert got == ["First sentence here.", "Second one follows!", "First sentence here. Second one follows!",
                   "Second one follows! Third? yes.", "Another paragraph.", "Same paragraph.",
                   "Another paragraph. Same paragraph."]   # "Third? yes." is under 12 chars; the repeat adds nothing
    with pytest.raises(ValueError, match="window and min_chars"):
        passages([text], window=0)


def test_sentences_keep_code_lines_apart_and_drop_heading_underlines():
    text = ("Heading\n=======\n\nUse it like this. `x` is kept:\n\n    >>> f(1)\n    2\n\n"
            "*Emphasis* starts. (So does a bracket.)")
    assert sentences(text) == [["Heading"], ["Use it like this.", "`x` is kept:"], [">>> f(1)", "2"],
                               ["*Emphasis* starts.", "(So does a bracket.)"]]
    assert split_sentences(text) == [s for para in sentences(text) for s in para]
    with pytest.raises(TypeError, match="text must be a str"):
        sentences(b"bytes")


def test_stdlib_passages_are_tens_of_thousands_of_unique_short_texts():
    texts = stdlib_passages()
    assert len(texts) > 20_000 and len(set(texts)) == len(texts)
    assert min(map(len, texts)) >= 20 and np.median([len(t) for t in texts]) < 150
