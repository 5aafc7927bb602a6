"""Long words without spaces: BPE stays equal to HF ``tokenizers`` and does O(n log n) work, not O(n²).

One pre-token can be as long as a request: 40k letters, or a page of Chinese, which has no
spaces. The merge loop (course_lib.tokenizers.bpe_merge) must neither change a single id nor
take quadratic time on it. Time is not measured here (that is bench/bench_bpe.py's job): the
scaling test counts the work itself, every rank lookup and every comparison of two ranks.
"""

from __future__ import annotations

import copy
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib.tokenizers import bpe as bpe_module
from course_lib.tokenizers.bpe import pre_tokenize
from course_lib.tokenizers.bpe_merge import merge_symbols
from tests.test_bpe import _smollm2_encodable

_rng = random.Random(23)
LONG_WORDS = {
    "20k random ASCII letters": "".join(_rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                                        for _ in range(20_000)),
    "5k random Chinese characters": "".join(chr(_rng.randint(0x4E00, 0x9FA5)) for _ in range(5_000)),
    "5k emoji, symbols and 2-4 byte characters": "".join(_rng.choice("🤗🚀👨‍👩‍👧‍👦€§©«»…—→∑√≈≠≤≥★☆♥♪✓✗😀🎉🔥💡")
                                                         for _ in range(5_000)),
    "20k times the letter a": "a" * 20_000,
    "20k times one Chinese character": "好" * 20_000,
    "20k digits": "".join(_rng.choice("0123456789") for _ in range(20_000)),
    "20k hyphens": "-" * 20_000,
}


@pytest.mark.parametrize("name", LONG_WORDS)
def test_long_pre_tokens_equal_hf(smollm2_bpe, hf_smollm2_tokenizer, name):
    text = LONG_WORDS[name]
    assert len(pre_tokenize(text)) == 1  # one pre-token: the whole text goes through one merge loop
    ours = smollm2_bpe.encode(text)
    assert ours == hf_smollm2_tokenizer.encode(text)
    assert smollm2_bpe.decode(ours) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=400).filter(_smollm2_encodable))
def test_random_unicode_equals_hf(smollm2_bpe, hf_smollm2_tokenizer, text):
    assert smollm2_bpe.encode(text) == hf_smollm2_tokenizer.encode(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(categories=("L", "So")), min_size=50, max_size=1_000).filter(_smollm2_encodable))
def test_long_random_words_equal_hf(smollm2_bpe, hf_smollm2_tokenizer, text):
    """Letters and symbols only: few pre-tokens, each long, so the merge order decides every id."""
    assert smollm2_bpe.encode(text) == hf_smollm2_tokenizer.encode(text)


# A toy vocabulary over two letters: every string has many overlapping pairs of equal rank, so the
# tie rule (leftmost first) and stale heap entries decide the result.
TOY_MERGES = [("a", "a"), ("a", "b"), ("b", "b"), ("aa", "a"), ("b", "a"), ("ab", "aa"), ("aa", "aa"),
              ("b", "ab"), ("bb", "b"), ("aaaa", "aaaa"), ("ab", "ab"), ("bab", "aa")]


@pytest.fixture(scope="module")
def toy_hf_bpe():
    from tokenizers import Tokenizer, models

    vocab = {"a": 0, "b": 1}
    for left, right in TOY_MERGES:
        vocab.setdefault(left + right, len(vocab))
    return Tokenizer(models.BPE(vocab, TOY_MERGES)), {pair: rank for rank, pair in enumerate(TOY_MERGES)}


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab", max_size=300))
def test_merge_order_equals_hf_on_repetitive_words(toy_hf_bpe, text):
    reference, ranks = toy_hf_bpe  # no pre-tokenizer: the whole text is one word for HF too
    assert merge_symbols(text, ranks) == (reference.encode(text).tokens if text else [])


class _CountedRank(int):
    """A merge rank that counts how often it is compared: the work of finding the next merge."""

    comparisons = 0

    def _count(op):  # noqa: N805 - builds the comparison methods below
        def compare(self, other):
            _CountedRank.comparisons += 1
            return op(self, other)
        return compare

    __lt__, __le__, __gt__, __ge__ = _count(int.__lt__), _count(int.__le__), _count(int.__gt__), _count(int.__ge__)
    __eq__, __ne__ = _count(int.__eq__), _count(int.__ne__)
    __hash__ = int.__hash__


class _CountedRanks(dict):
    """Pair -> rank that counts its lookups."""

    lookups = 0

    def get(self, pair, default=None):
        _CountedRanks.lookups += 1
        return super().get(pair, default)

    def __getitem__(self, pair):
        _CountedRanks.lookups += 1
        return super().__getitem__(pair)


@pytest.fixture(scope="module")
def counting_bpe(smollm2_bpe):
    tok = copy.copy(smollm2_bpe)  # the shared tokenizer keeps its plain ranks
    tok.ranks = _CountedRanks({pair: _CountedRank(rank) for pair, rank in smollm2_bpe.ranks.items()})
    return tok


def _merge_and_count(tok, word: str) -> tuple[list[str], int]:
    _CountedRank.comparisons = _CountedRanks.lookups = 0
    parts = tok.bpe(word)
    return parts, _CountedRank.comparisons + _CountedRanks.lookups


@pytest.mark.parametrize("letters", ["abcdefghijklmnopqrstuvwxyz", "a", "好"])
def test_merge_work_grows_as_n_log_n(counting_bpe, letters):
    """A quadratic merge loop compares O(n) ranks per merge; a heap compares O(log n).

    From n to 4n symbols the work of an O(n log n) loop grows about 4.7x, of an O(n²) loop 16x. Per
    n·log2(n) the heap measures 0.2-1.8 (SmolLM2, these words), the quadratic loop this replaced
    15-60 at n = 1000 and ~50 at n = 4000 (4000 × "好" is 12000 byte symbols).
    """
    rng = random.Random(0)
    table = str.maketrans(bpe_module.bytes_to_unicode())
    work = {}
    for n in (1_000, 4_000):
        word = "".join(rng.choice(letters) for _ in range(n)).encode("utf-8").decode("latin-1").translate(table)
        n_symbols = len(word)
        parts, work[n] = _merge_and_count(counting_bpe, word)
        assert len(parts) < n_symbols  # merges happened: the count is the merge loop's work
        assert work[n] <= 4 * n_symbols * math.log2(n_symbols), (n, work[n])
    assert work[4_000] / work[1_000] < 6, work


def test_long_words_are_not_cached(smollm2_bpe, monkeypatch):
    """The per-word cache is bounded: words over 256 UTF-8 bytes are not kept, and at most CACHE_LIMIT words are."""
    tok = copy.copy(smollm2_bpe)
    tok._cache = {}
    kept, too_long = "好" * 85, "好" * 86  # 255 and 258 bytes, one pre-token each
    for word in (kept, too_long):
        assert tok.encode(word) == smollm2_bpe.encode(word)
    assert kept in tok._cache and too_long not in tok._cache
    assert bpe_module.CACHE_MAX_WORD_BYTES == 256
    monkeypatch.setattr(bpe_module, "CACHE_LIMIT", 8)
    tok.encode(" ".join(f"w{i}" for i in range(50)))
    assert 0 < len(tok._cache) <= 8
