"""Checks for chapter 06 (prompt tuning, P-Tuning, prefix tuning) exercises."""

from __future__ import annotations

import torch

from course_lib.exercises import exercise

PREFIX_PARAMS_SMOLLM2 = 10 * 30 * 2 * 3 * 64  # n · layers · (key + value) · kv_heads · head_dim


def _prefix_kv_interleaved(past, num_layers, kv_heads, head_dim):
    B, n, _ = past.shape
    kv = past.view(B, n, 2, num_layers, kv_heads, head_dim).permute(2, 3, 0, 4, 1, 5)  # keys first, then values
    return [(kv[0, i], kv[1, i]) for i in range(num_layers)]


def _prefix_kv_no_permute(past, num_layers, kv_heads, head_dim):
    B, n, _ = past.shape
    kv = past.view(B, n, num_layers * 2, kv_heads, head_dim)
    return [(kv[:, :, 2 * i], kv[:, :, 2 * i + 1]) for i in range(num_layers)]  # (B, n, H, d): heads not moved


@exercise("06.1", answer="prefix_to_kv", wrong=(_prefix_kv_interleaved, _prefix_kv_no_permute), writes_code=True)
def check_prefix_to_kv(fn) -> str:
    """Check exercise 06.1: the learner's prefix → per-layer (key, value) split (Li & Liang 2021) against ``PrefixCache``."""
    from course_lib.peft.prompt_tuning import PrefixCache

    B, n, L, H, d = 2, 3, 4, 2, 5
    past = torch.randn(B, n, L * 2 * H * d, generator=torch.Generator().manual_seed(6))
    out = fn(past, L, H, d)
    assert len(out) == L, f"expected one (key, value) pair per layer ({L}), got {len(out)}"
    ref = PrefixCache(past, L, H, d)
    for i, (k, v) in enumerate(out):
        assert tuple(k.shape) == (B, H, n, d), f"layer {i}: keys must be (B, H_kv, n, d) = {(B, H, n, d)}, got {tuple(k.shape)}"
        assert torch.equal(k, ref.keys[i]) and torch.equal(v, ref.values[i]), (
            "the last dim is laid out as (layer, key/value, head, dim): view it as (B, n, 2L, H, d); "
            "even rows of 2L are keys, odd rows values")
    return "per-layer keys and values laid out as peft's past_key_values (and our PrefixCache)"


def _verbalize_at_end(logits, lengths, label_ids):
    return logits[:, -1][:, label_ids]


def _verbalize_off_by_one(logits, lengths, label_ids):
    return logits[torch.arange(logits.shape[0]), lengths][:, label_ids]


@exercise("06.2", answer="class_scores", wrong=(_verbalize_at_end, _verbalize_off_by_one), writes_code=True)
def check_class_scores(fn) -> str:
    """Check exercise 06.2: the learner's verbalizer class scores at the last real position against direct indexing."""
    g = torch.Generator().manual_seed(7)
    logits, lengths, label_ids = torch.randn(3, 6, 11, generator=g), torch.tensor([5, 2, 4]), [7, 3]
    out = fn(logits, lengths, label_ids)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 2), f"expected (B, K) = (3, 2), got {getattr(out, 'shape', out)}"
    expected = logits[torch.arange(3), lengths - 1][:, label_ids]
    assert torch.equal(out, expected), ("with right padding read each row at its last *real* position "
                                        "(length − 1), and only the label tokens' logits")
    return "one score per class, read where each sentence ends"


@exercise("06.3", answer="prefix_params", wrong=(10 * 30 * 2 * 576, 10 * 2 * 3 * 64, 10 * 30 * 576))
def check_prefix_params(value) -> str:
    """Check exercise 06.3: the learner's prefix-tuning trainable-parameter count against SmolLM2's."""
    assert isinstance(value, int), f"give an int, got {type(value).__name__}"
    assert value == PREFIX_PARAMS_SMOLLM2, ("each of the n virtual positions holds a key and a value at every one of the "
                                            "30 layers; with GQA a key is 3 heads × 64 = 192 numbers, not 576")
    return f"{value:,} trainable parameters = {value / 134_515_008:.3%} of SmolLM2-135M"
