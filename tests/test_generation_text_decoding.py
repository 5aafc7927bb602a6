"""course_lib.text_decoding: incremental detokenisation equals ``decode``; stop strings cut where a brute force does.

The references: ``tokenizer.decode(ids, skip_special_tokens=True)`` of the whole sequence (HF's
rule: invalid UTF-8 becomes U+FFFD), and for stop strings a brute force that decodes every prefix
of the ids from scratch and cuts at the first stop string to appear. The token sequences are random
SmolLM2 ids, biased to its 256 single-byte tokens so that UTF-8 characters are split across tokens,
cut off, and invalid. The engine's work test counts the ids handed to the tokenizer: one per
generated token (the old engine re-decoded the whole output every step, n(n+1)/2 ids).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib import chat, text_decoding
from course_lib.serving import Engine, SamplingParams
from course_lib.serving.protocol import Message
from course_lib.text_decoding import (
    ROLES,
    Detokenizer,
    TextStream,
    check_messages,
    held_back,
    to_template_messages,
)
from course_lib.tokenizers import chat_template
from course_lib.tokenizers.bpe import bytes_to_unicode

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class TextOnly:
    """A tokenizer that only has ``decode`` (no ``decode_bytes``): the detokenizer's other path."""

    def __init__(self, tok):
        self.tok = tok

    def decode(self, ids, skip_special_tokens=False):
        return self.tok.decode(ids, skip_special_tokens=skip_special_tokens)


class Counting:
    """SmolLM2's tokenizer, counting every id it is asked to decode (the detokenisation work)."""

    def __init__(self, tok):
        self.tok, self.decoded = tok, 0

    def __getattr__(self, name):
        return getattr(self.tok, name)

    def decode(self, ids, skip_special_tokens=False):
        ids = list(ids)
        self.decoded += len(ids)
        return self.tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def decode_bytes(self, ids):
        ids = list(ids)
        self.decoded += len(ids)
        return self.tok.decode_bytes(ids)


def token_ids(tok):
    """Random ids: half single-byte tokens (they split and break UTF-8 characters), half any id (specials too)."""
    byte_ids = sorted(tok.vocab[c] for c in bytes_to_unicode().values() if c in tok.vocab)
    return st.lists(st.one_of(st.sampled_from(byte_ids), st.integers(0, tok.vocab_size - 1)), max_size=40)


def pieces(tok, ids, skip=True):
    detok = Detokenizer(tok, skip_special_tokens=skip)
    return [detok.add(i) for i in ids] + [detok.flush()]


@pytest.fixture(scope="module")
def tok(smollm2_bpe):
    return smollm2_bpe


@SETTINGS
@given(data=st.data())
def test_incremental_detokenisation_equals_decode_of_the_whole_sequence(tok, data):
    ids = data.draw(token_ids(tok))
    for skip in (True, False):
        want = tok.decode(ids, skip_special_tokens=skip)
        assert "".join(pieces(tok, ids, skip)) == want
        assert "".join(pieces(TextOnly(tok), ids, skip)) == want


@SETTINGS
@given(text=st.text(max_size=30))
def test_a_complete_character_is_released_by_the_token_that_completes_it(tok, text):
    ids = tok.encode(text, allow_special=False)
    got, want = pieces(tok, ids), tok.decode(ids)  # == text unless a byte has no token in SmolLM2's vocabulary
    assert "".join(got) == want
    if "\ufffd" not in want:  # never half a character, and nothing left over at the end
        assert all("\ufffd" not in p for p in got) and got[-1] == ""


def brute_force(tok, ids, stop):
    """Decode every prefix from scratch; the first prefix holding a stop string ends the text before it."""
    for k in range(1, len(ids) + 1):
        text = tok.decode(ids[:k], skip_special_tokens=True)
        hits = [text.find(s) for s in stop if s in text]
        if hits:
            return text[:min(hits)], k
    return tok.decode(ids, skip_special_tokens=True), None


def streamed(tok, ids, stop):
    stream, out = TextStream(tok, stop), []
    for k, i in enumerate(ids, 1):
        out.append(stream.push(i))
        if stream.stopped:
            assert "".join(out) == stream.text
            return "".join(out), k
    out.append(stream.finish())
    assert "".join(out) == stream.text
    return "".join(out), None


@SETTINGS
@given(data=st.data())
def test_stop_strings_cut_where_the_brute_force_cuts(tok, data):
    ids = data.draw(st.one_of(token_ids(tok), st.text(max_size=40).map(lambda t: tok.encode(t, allow_special=False))))
    full = tok.decode(ids, skip_special_tokens=True).replace("\ufffd", "")
    def substring():  # stop strings that occur (often more than once, overlapping each other)
        i = data.draw(st.integers(0, max(0, len(full) - 1)))
        return full[i:i + data.draw(st.integers(1, 5))] or "x"
    stop = [data.draw(st.one_of(st.builds(substring), st.text(min_size=1, max_size=3).filter(lambda s: "\ufffd" not in s)))
            for _ in range(data.draw(st.integers(1, 4)))]
    assert streamed(tok, ids, stop) == brute_force(tok, ids, stop)
    assert streamed(TextOnly(tok), ids, stop) == brute_force(tok, ids, stop)


def test_the_one_hold_back_rule_holds_back_the_longest_end_that_starts_a_stop_string():
    assert held_back("the end", ["end of", "d o"]) == 3          # "end" starts "end of"
    assert held_back("the end", ["xyz"]) == 0
    assert held_back("abab", ["abac"]) == 2 and held_back("abab", ["bab!"]) == 3  # "ab", "bab"
    assert held_back("a", ["ab", "abc"]) == 1 and held_back("", ["ab"]) == 0
    stream = TextStream(_Chars(), stop=["STOP"])
    assert [stream.push(i) for i in b"hi ST"] == ["h", "i", " ", "", ""]   # "ST" waits
    assert stream.push(ord("x")) == "STx" and stream.text == "hi STx"      # not a stop after all
    assert [stream.push(i) for i in b" STOP"] == [" ", "", "", "", ""] and stream.stopped
    with pytest.raises(ValueError, match="stopped"):
        stream.push(ord("!"))


class _Chars:
    """ids are byte values; decode as UTF-8 (a minimal byte-level tokenizer with only ``decode``)."""

    def decode(self, ids, skip_special_tokens=False):
        return bytes(ids).decode("utf-8", errors="replace")


def test_a_stop_prefix_before_a_split_character_is_held_back():
    """Stop "ab中": "ab" then the first byte of 中 must not release "ab" (the old engine's rule did)."""
    stream = TextStream(_Chars(), stop=["ab中"])
    ids = list("xab中".encode())
    out = [stream.push(i) for i in ids]
    assert "".join(out) == "x" and stream.stopped


@pytest.mark.parametrize("bad, error", [([""], ValueError), (["ok", 3], ValueError), (7, TypeError)])
def test_bad_stop_strings_are_refused(bad, error):
    with pytest.raises(error, match="stop must be"):
        TextStream(_Chars(), stop=bad)
    with pytest.raises(TypeError, match="decode"):
        Detokenizer(object())


def test_the_engine_decodes_each_generated_token_once(tiny_llama, smollm2_bpe):
    """Work count, not time: the ids handed to the tokenizer grow linearly with the reply's length."""
    work = {}
    for n in (8, 32, 96):
        tok = Counting(smollm2_bpe)
        with Engine(tiny_llama, tok, slots=1, max_len=160, stop_token_ids=()) as engine:
            request = engine.complete("Once upon a time", SamplingParams(max_tokens=n, temperature=0))
        assert len(request.token_ids) == n and request.finish_reason == "length"
        assert request.text == smollm2_bpe.decode(request.token_ids, skip_special_tokens=True)
        work[n] = tok.decoded
    assert work == {8: 8, 32: 32, 96: 96}  # re-decoding the output every step would be n(n+1)/2


def test_one_message_check_for_the_chat_model_the_template_and_the_server():
    assert chat.check_messages is chat_template.check_messages is text_decoding.check_messages
    assert chat.to_template_messages is text_decoding.to_template_messages
    assert Message.model_fields["role"].annotation.__args__ == ROLES == chat_template.ROLES
    every_role = [{"role": r, "content": f"a {r} turn"} for r in ROLES]
    assert [m["role"] for m in to_template_messages(every_role)] == ["system", "system", "user", "assistant", "user"]
    for bad in ([], [{"role": "function", "content": "x"}], [{"role": "user"}]):
        with pytest.raises(ValueError):
            to_template_messages(bad)
    with pytest.raises(TypeError, match="content"):
        check_messages([{"role": "user", "content": 3}])


def test_local_chat_model_streams_through_the_text_stream(smollm2, smollm2_bpe):
    """The chat model's pieces are the text stream's pieces: a stop string inside a Chinese reply."""
    local = chat.LocalChatModel(smollm2, smollm2_bpe)
    messages = [{"role": "user", "content": "用中文说：你好，世界"}]
    full = local.chat(messages, max_tokens=16).content
    ids = torch.tensor([local.prompt_ids(messages)])
    assert full and "\ufffd" not in full and ids.shape[1] > 0
    stop = full[len(full) // 2:len(full) // 2 + 2]
    got = list(local.stream(messages, max_tokens=16, stop=[stop]))
    assert "".join(got) == full[:full.find(stop)] and all("\ufffd" not in p for p in got)
