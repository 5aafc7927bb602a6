"""Byte-level BPE (course_lib.tokenizers.bpe) against HF ``tokenizers``.

Token ids are integers: equality is exact, there is no tolerance.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib.tokenizers.bpe import GPT2_PATTERN, ByteLevelBPE, bytes_to_unicode, pre_tokenize

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bpe_corpus.txt"


def test_byte_table_is_a_bijection_onto_printable_characters():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"
    assert all(c.isprintable() and not c.isspace() for c in table.values())


def test_pre_tokenizer_matches_hf_bytelevel_regex(hf_smollm2_tokenizer):
    pre = hf_smollm2_tokenizer.backend_tokenizer.pre_tokenizer
    text = CORPUS.read_bytes().decode("utf-8")[:20_000]
    table = bytes_to_unicode()
    ours = ["".join(table[b] for b in w.encode("utf-8")) for w in pre_tokenize(text)]
    assert ours == [w for w, _ in pre.pre_tokenize_str(text)]


def test_loads_smollm2_vocab_and_merges(smollm2_bpe):
    assert smollm2_bpe.vocab_size == 49152
    assert len(smollm2_bpe.merges) == 48900
    assert smollm2_bpe.special_tokens["<|im_start|>"] == 1 and smollm2_bpe.special_tokens["<|im_end|>"] == 2
    assert len(smollm2_bpe.special_tokens) == 17


def test_corpus_ids_equal_hf_tokenizer(smollm2_bpe, hf_smollm2_tokenizer):
    text = CORPUS.read_bytes().decode("utf-8")  # read bytes: keep the corpus' \r\n runs
    assert len(text.encode("utf-8")) >= 100_000
    for needle in ("\r\n", "\u3000", "👨‍👩‍👧‍👦", "<|im_start|>", "def ", "分词器", "\t\t"):
        assert needle in text, needle
    ours = smollm2_bpe.encode(text)
    ref = hf_smollm2_tokenizer.encode(text)
    assert ours == ref
    assert smollm2_bpe.decode(ours) == hf_smollm2_tokenizer.decode(ref) == text


@pytest.mark.parametrize("text", ["Hello world", "你好，世界！", "  x\n\n\t y  ", "🤗🚀 ok", "<|im_start|>user\nhi<|im_end|>\n",
                                  "don't 123456 3.14", ""])
def test_short_texts_equal_hf(smollm2_bpe, hf_smollm2_tokenizer, text):
    assert smollm2_bpe.encode(text) == hf_smollm2_tokenizer.encode(text)


def test_special_tokens_can_be_encoded_as_text(smollm2_bpe):
    ids = smollm2_bpe.encode("<|im_end|>", allow_special=False)
    assert 2 not in ids and smollm2_bpe.decode(ids) == "<|im_end|>"
    assert smollm2_bpe.decode([1, 2, 19556], skip_special_tokens=True) == "Hello"


@pytest.fixture(scope="module")
def trained_bpe():
    from course_lib.data import python_docs_text

    return ByteLevelBPE.train(python_docs_text(30_000) + "分词器把文本切成子词。🤗", 600, ["<|endoftext|>"])


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40))
def test_round_trip_arbitrary_unicode(trained_bpe, text):
    """A trained byte-level vocabulary holds all 256 bytes, so every string survives."""
    assert trained_bpe.decode(trained_bpe.encode(text)) == text


def _smollm2_encodable(text: str) -> bool:
    return all(b not in SMOLLM2_MISSING_BYTES for b in text.encode("utf-8"))


SMOLLM2_MISSING_BYTES = {4, 6, 19, 20, 22, 29, 192, 193, 241, 242, *range(245, 256)}


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40).filter(_smollm2_encodable))
def test_round_trip_arbitrary_unicode_smollm2(smollm2_bpe, text):
    """SmolLM2's vocabulary lacks 21 byte symbols (see the module docstring); any other text survives."""
    assert smollm2_bpe.decode(smollm2_bpe.encode(text)) == text


def test_smollm2_missing_bytes_are_dropped_like_hf(smollm2_bpe, hf_smollm2_tokenizer):
    table = bytes_to_unicode()
    assert {b for b, c in table.items() if c not in smollm2_bpe.vocab} == SMOLLM2_MISSING_BYTES
    for text in ["a\x16b", "x\x04!?", "\U00050000 ok", "\x1d\x1d"]:
        assert smollm2_bpe.encode(text) == hf_smollm2_tokenizer.encode(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab 你好\n🤗é1!"), max_size=30))
def test_random_mixtures_equal_hf(smollm2_bpe, hf_smollm2_tokenizer, text):
    assert smollm2_bpe.encode(text) == hf_smollm2_tokenizer.encode(text)


def test_training_learns_the_same_merges_as_hf_bpe_trainer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from course_lib.data import python_docs_text

    text = python_docs_text(60_000) + "\n我爱自然语言处理。分词器把文本切成子词。" * 30
    specials = ["<|endoftext|>", "<|im_start|>"]
    ours = ByteLevelBPE.train(text, 700, specials)
    ref = Tokenizer(models.BPE())
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    ref.train_from_iterator([text], trainer)
    model = json.loads(ref.to_str())["model"]
    assert ours.vocab == model["vocab"]
    assert ours.merges == [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]
    sample = "def train(model): return 42  # 分词器"
    assert ours.encode(sample) == ref.encode(sample).ids
    assert ours.decode(ours.encode(sample)) == sample


def test_cache_does_not_change_results(smollm2_bpe):
    text = "the cat sat on the mat, the end"
    first = smollm2_bpe.encode(text)
    assert smollm2_bpe.encode(text) == first
    assert smollm2_bpe.bpe("Ġthe") == ["Ġthe"]
    assert smollm2_bpe.tokens([19556, 905]) == ["Hello", "Ġworld"]
    first = smollm2_bpe.decode_bytes(smollm2_bpe.encode("模型")[:1])  # a token may hold part of a character
    assert "模型".encode().startswith(first) and len(first) >= 1


def test_bad_input_raises_clear_errors(smollm2_bpe):
    with pytest.raises(TypeError, match="text must be a str"):
        smollm2_bpe.encode(b"bytes")
    with pytest.raises(ValueError, match="out of range"):
        smollm2_bpe.decode([49152])
    with pytest.raises(ValueError, match="out of range"):
        smollm2_bpe.decode([-1])
    with pytest.raises(TypeError, match="ids must be ints"):
        smollm2_bpe.decode([1.5])
    with pytest.raises(ValueError, match="no UTF-8 encoding"):
        smollm2_bpe.encode("lone \ud800 surrogate")
    with pytest.raises(ValueError, match="vocab_size must be"):
        ByteLevelBPE.train("abc", 100)
    with pytest.raises(ValueError, match="not in vocab"):
        ByteLevelBPE({"a": 0, "b": 1}, [("a", "b")])
    with pytest.raises(ValueError, match="special token"):
        ByteLevelBPE({"a": 0}, [], {"<s>": 5})
    with pytest.raises(ValueError, match="not in the vocabulary"):
        smollm2_bpe.token_to_id("no-such-token-xyz")
    with pytest.raises(ValueError, match="byte-level BPE"):
        ByteLevelBPE.from_gguf_data({"model": "llama"})
    assert GPT2_PATTERN.startswith("'s|'t")
