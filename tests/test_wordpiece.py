"""Our WordPiece vs the HF tokenizer of all-MiniLM-L6-v2 (same folder: vocab.txt + tokenizer config).

Ids must be *equal* (no tolerance): tokenisation is discrete.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import weights
from course_lib.data import python_docs_text
from course_lib.tokenizers.wordpiece import WordPieceTokenizer, normalize, pre_tokenize

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def ours():
    return WordPieceTokenizer.from_pretrained(weights.minilm_path())


@pytest.fixture(scope="module")
def hf():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(weights.minilm_path()))


TRICKY = [
    "Héllo, 世界! naïve [MASK] 😀 hi😀 x [mask] ΣΑΣ İstanbul ﬁ Ⅻ ½ ㈱ ｆｕｌｌ　width。，！",
    "tab\tnew\nline\rcr \x0bvt \x85nel a\u200bb \x1fc \ufeffd \x00e \ufffdf",
    "Crème brûlée, Ångström, Øresund, Łódź, São Paulo, façade, coöperate, résumé",
    "한국어 텍스트와 日本語のテキスト, русский текст, ελληνικά, עברית, العربية",
    "emoji 👩‍👩‍👧‍👦 🇨🇳 🏳️‍🌈 ✨🔥💯 and math ∑∫√∞ ≠ ≤ ≥ → ←",
    "$100 + 50% = ^_^ {braces} [brackets] <tags> `code` ~tilde~ @user #tag | pipe \\ backslash",
    "a" * 101, "é" * 100, "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "[CLS] already [SEP] inside [PAD] text [UNK]", "",
]


def mixed_corpus() -> list[str]:
    """≥ 50 KB: Python docs (English), course sentences (EN + ZH), the shared mixed BPE corpus, TRICKY."""
    lines = python_docs_text(30_000).split("\n")
    lines += (DATA / "bert_sentences.txt").read_text(encoding="utf-8").splitlines()
    lines += (DATA / "bpe_corpus.txt").read_bytes().decode("utf-8").split("\n")[:3000]
    return lines + TRICKY


def test_corpus_is_big_and_mixed():
    text = "\n".join(mixed_corpus())
    assert len(text.encode("utf-8")) >= 50_000
    assert sum(0x4E00 <= ord(c) <= 0x9FFF for c in text) > 1000  # Chinese
    assert any(unicodedata.category(c) == "So" for c in text)    # emoji / symbols
    assert any(unicodedata.category(c) == "Mn" for c in unicodedata.normalize("NFD", text))  # accents


def test_ids_equal_hf_on_mixed_corpus(ours, hf):
    lines = mixed_corpus()
    expected = hf(lines, truncation=False).input_ids
    got = [ours.encode(line, max_length=10**9).input_ids for line in lines]
    bad = [i for i in range(len(lines)) if got[i] != expected[i]]
    assert not bad, f"{len(bad)} of {len(lines)} lines differ, first: {lines[bad[0]][:80]!r}"


def test_tokens_of_a_known_sentence(ours):
    assert ours.tokenize("Héllo, 世界! [MASK] unaffable") == ["hello", ",", "世", "[UNK]", "!", "[MASK]", "una", "##ffa", "##ble"]


def test_pair_truncation_and_batch_equal_hf(ours, hf):
    a, b = "The cat sits on the mat and looks outside.", "猫坐在垫子上。 It is a very long second segment indeed."
    ref = hf(a, b, truncation="longest_first", max_length=16)
    enc = ours.encode(a, b, max_length=16)
    assert enc.input_ids == ref.input_ids and enc.token_type_ids == ref.token_type_ids
    texts = ["short", "a longer sentence with more words in it", "中文句子"]
    ref = hf(texts, padding=True, return_tensors="pt")
    got = ours(texts)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert got[key].tolist() == ref[key].tolist(), key


def test_normalize_and_pre_tokenize_steps():
    assert normalize("Ünïcödé 中文") == "unicode  中  文 "
    assert normalize("Ünï", lowercase=False, strip_accents=False) == "Ünï"
    assert pre_tokenize("hello, world!it's") == ["hello", ",", "world", "!", "it", "'", "s"]


def _stable_char(c: str) -> bool:
    """Assigned in Unicode 3.2 with the same category today: both Unicode tables agree on it."""
    old = unicodedata.ucd_3_2_0.category(c)
    return old != "Cn" and old == unicodedata.category(c)


# HF tokenizers classifies characters with Rust Unicode tables older than Python 3.11's Unicode 14.
# A full scan of U+0000..U+2FFFF and U+E0000.. found 759 code points that tokenise differently, all
# added to Unicode after those tables (755) or re-categorised (U+166D, U+1734, U+1885, U+1886).
# The property test therefore draws from characters both tables agree on (test below pins one case).
@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8").filter(_stable_char), max_size=40))
def test_ids_equal_hf_on_arbitrary_text(ours, hf, text):
    assert ours.encode(text, max_length=10**9).input_ids == hf(text, truncation=False).input_ids


def test_known_unicode_version_difference_is_documented(ours, hf):
    ch = "\u1ac1"  # COMBINING LEFT PARENTHESIS ABOVE LEFT, Mn since Unicode 14: we strip it, HF keeps it
    assert ours.tokenize(f"a{ch}b") == ["ab"]
    assert hf.tokenize(f"a{ch}b") == ["[UNK]"]


def test_decode_round_trip(ours):
    ids = ours.encode("WordPiece tokenization is greedy.").input_ids
    assert ours.decode(ids) == "wordpiece tokenization is greedy ."


def test_bad_input(ours, tmp_path):
    with pytest.raises(TypeError, match="text must be a str"):
        ours.tokenize(b"bytes")
    with pytest.raises(TypeError, match="non-empty list of str"):
        ours("a single string")
    with pytest.raises(ValueError, match="max_length must be >= 2"):
        ours.encode("hello", max_length=1)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ours.decode([len(ours)])
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        WordPieceTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="special token"):
        WordPieceTokenizer(["a", "b"])


@pytest.mark.parametrize("n_a,n_b,max_length", [(10, 16, 16), (3, 30, 16), (30, 3, 16), (20, 20, 9), (40, 2, 10)])
def test_pair_truncation_budget_split_equals_hf(ours, hf, n_a, n_b, max_length):
    a, b = " ".join(["cat"] * n_a), " ".join(["dog"] * n_b)
    ref = hf(a, b, truncation="longest_first", max_length=max_length)
    assert ours.encode(a, b, max_length=max_length).input_ids == ref.input_ids
