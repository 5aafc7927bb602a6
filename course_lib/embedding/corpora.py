"""Word2vec corpora that ship with installed packages, so nothing downloads (COURSE_DESIGN §4).

- :func:`lee_sentences` — gensim's ``lee_background.cor`` (300 Australian news stories, one per line),
  tokenised with gensim's ``simple_preprocess``, the form gensim's own tutorials train on.
- :func:`python_docs_sentences` — the Python documentation's help topics (``pydoc_data.topics``, in
  the standard library) cut into sentences by :func:`course_lib.corpus.split_sentences` (the library's
  one splitter, imported here) and words by :func:`split_words`.
"""

from __future__ import annotations

import re

from course_lib.corpus import split_sentences
from course_lib.data import python_docs_topics

_WORD = re.compile(r"[a-z_][a-z0-9_]*")


def split_words(text: str) -> list[str]:
    """Lower-cased identifier-like words of ``text`` with their ``_`` trimmed, at least 2 characters.

    ``"Raise a ValueError in __init__()"`` → ``["raise", "valueerror", "in", "init"]``; numbers and
    punctuation are dropped, ``os.path.join`` gives three words.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    words = (w.strip("_") for w in _WORD.findall(text.lower()))
    return [w for w in words if len(w) >= 2]


def python_docs_sentences(min_words: int = 2) -> list[list[str]]:
    """The Python help topics as tokenised sentences, in topic order; sentences under ``min_words`` dropped."""
    if isinstance(min_words, bool) or not isinstance(min_words, int) or min_words <= 0:
        raise ValueError(f"min_words must be a positive int, got {min_words!r}")
    out = []
    for text in python_docs_topics().values():
        out += [words for words in map(split_words, split_sentences(text)) if len(words) >= min_words]
    return out


def lee_sentences() -> list[list[str]]:
    """gensim's ``lee_background.cor``, one tokenised story per line (``simple_preprocess``)."""
    from gensim.test.utils import datapath
    from gensim.utils import simple_preprocess

    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        return [simple_preprocess(line) for line in f]
