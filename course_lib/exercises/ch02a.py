"""Exercise checks for chapter 02a (BERT, T5 and GPT)."""

from __future__ import annotations

import torch

from course_lib.attention import causal_mask
from course_lib.exercises import exercise

# 02a.2: the toy vocabulary the exercise cell shows (the order gives the ids)
TOY_VOCAB = ["[UNK]", "un", "unhappy", "happy", "##happi", "##happy", "##ness", "##h", "##app", "##i", "##ne", "##ss"]


@exercise("02a.1", answer="decoder_only_mask",
          wrong=(lambda T: torch.ones(T, T, dtype=torch.bool).triu(),     # sees the future instead of the past
                 lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1)),  # a token may not see itself
          writes_code=True)
def check_decoder_only_mask(decoder_only_mask) -> str:
    """Check exercise 02a.1: the learner's decoder-only mask against ``causal_mask``."""
    for T in (1, 5, 17):
        got = decoder_only_mask(T)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.bool and got.shape == (T, T), \
            f"decoder_only_mask({T}) should be a bool tensor of shape ({T}, {T}), got {getattr(got, 'dtype', type(got))} " \
            f"{tuple(getattr(got, 'shape', ()))}"
        wrong = (got != causal_mask(T)).nonzero().tolist()
        assert not wrong, (f"T = {T}: entry (query i, key j) = {tuple(wrong[0])} is {bool(got[tuple(wrong[0])])}; "
                           "query i may see key j exactly when j ≤ i (itself included)")
    return "query i sees keys j ≤ i, for T = 1, 5, 17"


def _greedy_longest_match(word: str, vocab: set[str]) -> list[str]:
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


@exercise("02a.2", answer="answer",
          wrong=(["un", "##h", "##app", "##i", "##ne", "##ss"],   # shortest match first
                 ["un", "happi", "ness"],                          # continuation pieces without ##
                 ["[UNK]"]))
def check_wordpiece_by_hand(answer) -> str:
    """Check exercise 02a.2: the learner's hand WordPiece split of "unhappiness" against greedy longest-match."""
    expected = _greedy_longest_match("unhappiness", set(TOY_VOCAB))
    assert isinstance(answer, list) and all(isinstance(p, str) for p in answer), \
        f"answer should be a list of strings (pieces), got {answer!r}"
    assert answer == expected, (f"{answer} is not the greedy longest-match split: at each step take the longest "
                                "piece in the vocabulary, and pieces after the first start with ##")
    return f"unhappiness -> {expected}"


def _bert_params_no_pooler(V, P, S, d, d_ff, L):
    """Wrong: forgets the pooler (dense d × d + bias on [CLS])."""
    layer = 4 * (d * d + d) + (d * d_ff + d_ff) + (d_ff * d + d) + 2 * 2 * d
    return (V + P + S) * d + 2 * d + L * layer


def _bert_params_no_attention_bias(V, P, S, d, d_ff, L):
    """Wrong: the four attention projections counted without their biases."""
    layer = 4 * d * d + (d * d_ff + d_ff) + (d_ff * d + d) + 2 * 2 * d
    return (V + P + S) * d + 2 * d + L * layer + d * d + d


@exercise("02a.3", answer="bert_params", wrong=(_bert_params_no_pooler, _bert_params_no_attention_bias),
          writes_code=True)
def check_bert_params(bert_params) -> str:
    """Check exercise 02a.3: the learner's BERT parameter formula against course_lib's ``BertModel``."""
    from course_lib.models.bert import BertConfig, BertModel

    counts = []
    for V, P, S, d, d_ff, L, heads in ((100, 16, 2, 32, 64, 2, 4), (57, 8, 3, 16, 48, 3, 2)):
        model = BertModel(BertConfig(vocab_size=V, max_position_embeddings=P, type_vocab_size=S, hidden_size=d,
                                     intermediate_size=d_ff, num_hidden_layers=L, num_attention_heads=heads))
        expected = sum(p.numel() for p in model.parameters())
        got = bert_params(V, P, S, d, d_ff, L)
        assert got == expected, (f"bert_params{(V, P, S, d, d_ff, L)} = {got}, but course_lib's BertModel has "
                                 f"{expected:,} parameters (difference {expected - got:+,}): count every bias, "
                                 "both LayerNorm vectors and the pooler")
        counts.append(expected)
    return f"matches BertModel on two configurations ({counts[0]:,} and {counts[1]:,} parameters)"


@exercise("02a.4", answer="answer_bucket", wrong=(12, 23))
def check_bucket(answer_bucket) -> str:
    """Check exercise 02a.4: the learner's T5 relative-position bucket for +40 against ``relative_position_bucket``."""
    from course_lib.models.t5 import relative_position_bucket

    expected = int(relative_position_bucket(torch.tensor(40), bidirectional=True, num_buckets=32, max_distance=128))
    assert isinstance(answer_bucket, int), f"answer_bucket should be an int, got {answer_bucket!r}"
    assert answer_bucket == expected, (f"bucket(+40) is not {answer_bucket}: j > i uses the second half (offset 16), "
                                       "8 exact buckets, then log spacing from 8 to 128 over the remaining 8")
    return f"bucket(+40) = {expected}"
