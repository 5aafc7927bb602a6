"""The Python-docs sentence splitter and tokenizer that feed word2vec (``course_lib.embedding.corpora``)."""

from __future__ import annotations

import hashlib
import json
import platform

import pytest

from course_lib import corpus
from course_lib.embedding.corpora import lee_sentences, python_docs_sentences, split_sentences, split_words


def test_tokenize_keeps_identifiers_and_drops_punctuation():
    assert split_words("Raise a ValueError in __init__() (see os.path.join, 3.14)") == [
        "raise", "valueerror", "in", "init", "see", "os", "path", "join"]


def test_split_sentences_prose_code_and_headings():
    text = ("The \"assert\" statement\n**********************\n\nAssert statements are handy. They\n"
            "insert checks! Is it \"True\"? Yes.\n\n   if __debug__:\n       raise AssertionError\n")
    assert split_sentences(text) == [
        'The "assert" statement', "Assert statements are handy.", "They insert checks!", 'Is it "True"?', "Yes.",
        "if __debug__:", "raise AssertionError"]


def test_one_splitter_for_the_library():
    assert split_sentences is corpus.split_sentences                     # word2vec and the passages share it


def test_python_docs_sentences_unchanged_by_the_move_to_corpus():
    """The tokenised Python-docs corpus of chapter 07, hashed before ``split_sentences`` moved to ``corpus``."""
    if platform.python_version() != "3.11.7":
        pytest.skip("pydoc_data.topics is read live; its text is Python-version specific")
    docs = python_docs_sentences()
    digest = hashlib.sha256(json.dumps(docs).encode()).hexdigest()
    assert (len(docs), digest) == (5544, "c3f288afc1748ddc61e8f8272d6cc2f4122671fc1889208e00b0a01054b21f1a")


def test_python_docs_corpus_size_and_content():
    docs = python_docs_sentences()
    assert 5_000 < len(docs) < 6_500 and 50_000 < sum(map(len, docs)) < 70_000
    assert all(len(s) >= 2 for s in docs)
    assert any(s[:6] == ["exceptions", "are", "means", "of", "breaking", "out"] for s in docs)   # topic "exceptions"
    assert len(lee_sentences()) == 300


@pytest.mark.parametrize("call, error, message", [
    (lambda: split_words(b"bytes"), TypeError, "text must be a str"),
    (lambda: split_sentences(None), TypeError, "text must be a str"),
    (lambda: python_docs_sentences(min_words=0), ValueError, "min_words must be a positive int"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
