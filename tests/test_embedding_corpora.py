"""The Python-docs sentence splitter and tokenizer that feed word2vec (``course_lib.embedding.corpora``)."""

from __future__ import annotations

import pytest

from course_lib.embedding.corpora import lee_sentences, python_docs_sentences, split_sentences, tokenize


def test_tokenize_keeps_identifiers_and_drops_punctuation():
    assert tokenize("Raise a ValueError in __init__() (see os.path.join, 3.14)") == [
        "raise", "valueerror", "in", "init", "see", "os", "path", "join"]


def test_split_sentences_prose_code_and_headings():
    text = ("The \"assert\" statement\n**********************\n\nAssert statements are handy. They\n"
            "insert checks! Is it \"True\"? Yes.\n\n   if __debug__:\n       raise AssertionError\n")
    assert split_sentences(text) == [
        'The "assert" statement', "Assert statements are handy.", "They insert checks!", 'Is it "True"?', "Yes.",
        "if __debug__:", "raise AssertionError"]


def test_python_docs_corpus_size_and_content():
    docs = python_docs_sentences()
    assert 5_000 < len(docs) < 6_500 and 50_000 < sum(map(len, docs)) < 70_000
    assert all(len(s) >= 2 for s in docs)
    assert any(s[:6] == ["exceptions", "are", "means", "of", "breaking", "out"] for s in docs)   # topic "exceptions"
    assert len(lee_sentences()) == 300


@pytest.mark.parametrize("call, error, message", [
    (lambda: tokenize(b"bytes"), TypeError, "text must be a str"),
    (lambda: split_sentences(None), TypeError, "text must be a str"),
    (lambda: python_docs_sentences(min_words=0), ValueError, "min_words must be a positive int"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
