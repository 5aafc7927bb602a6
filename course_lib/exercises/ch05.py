"""Checks for chapter 05 (LoRA) exercises."""

from __future__ import annotations

import torch

from course_lib.exercises import exercise

LORA_QV_PARAMS_SMOLLM2 = 30 * 8 * ((576 + 576) + (576 + 192))  # r (in + out) per layer for q (576→576) and v (576→192)


def _lora_forward_without_scaling(x, w0, a, b, alpha, r):
    return x @ w0.T + x @ a.T @ b.T


def _lora_forward_rs(x, w0, a, b, alpha, r):
    return x @ w0.T + alpha / r**0.5 * (x @ a.T @ b.T)


@exercise("05.1", answer="lora_forward", wrong=(_lora_forward_without_scaling, _lora_forward_rs), writes_code=True)
def check_lora_forward(fn) -> str:
    """Check exercise 05.1: the learner's LoRA forward W₀x + (α/r)·BAx (Hu et al. 2021) against the formula."""
    g = torch.Generator().manual_seed(5)
    x, w0 = torch.randn(3, 7, 10, generator=g), torch.randn(6, 10, generator=g)
    a, b = torch.randn(4, 10, generator=g), torch.randn(6, 4, generator=g)
    out = fn(x, w0, a, b, 8.0, 4)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 7, 6), f"expected shape (3, 7, 6), got {getattr(out, 'shape', out)}"
    expected = x @ w0.T + 2.0 * (x @ a.T @ b.T)
    assert torch.allclose(out, expected, atol=1e-4), "h = W₀x + (α/r)·B(Ax): check the scaling α/r and the order of A and B"
    return "h = W₀x + (α/r)·BAx, shapes and scaling right"


def _dora_merge_column_norm(w0, a, b, m, scaling):
    w = w0 + scaling * b @ a
    return m[:, None] * w / w.norm(dim=0, keepdim=True)


def _dora_merge_base_norm(w0, a, b, m, scaling):
    w = w0 + scaling * b @ a
    return m[:, None] * w / w0.norm(dim=1, keepdim=True)


@exercise("05.2", answer="dora_merge", wrong=(_dora_merge_column_norm, _dora_merge_base_norm), writes_code=True)
def check_dora_merge(fn) -> str:
    """Check exercise 05.2: the learner's merged DoRA weight (Liu et al. 2024) against m · W / ‖W‖ per row."""
    g = torch.Generator().manual_seed(6)
    w0, a, b = torch.randn(5, 8, generator=g), torch.randn(2, 8, generator=g), torch.randn(5, 2, generator=g)
    m = torch.rand(5, generator=g) + 0.5
    out = fn(w0, a, b, m, 0.5)
    assert isinstance(out, torch.Tensor) and out.shape == (5, 8), f"expected a (5, 8) weight, got {getattr(out, 'shape', out)}"
    w = w0 + 0.5 * b @ a
    expected = m[:, None] * w / w.norm(dim=1, keepdim=True)
    assert torch.allclose(out, expected, atol=1e-5), ("W' = m ⊙ (W₀ + sBA) / ‖W₀ + sBA‖: the norm is per output row "
                                                      "(dim=1) of the *updated* weight")
    assert torch.allclose(out.norm(dim=1), m, atol=1e-5)
    return "each row of the merged weight has norm m (magnitude) and the direction of W₀ + sBA"


@exercise("05.3", answer="lora_qv_params", wrong=(30 * 8 * (576 + 576) * 2, 8 * (576 + 576) + 8 * (576 + 192)))
def check_lora_qv_params(value) -> str:
    """Check exercise 05.3: the learner's LoRA q/v trainable-parameter count against SmolLM2's."""
    assert isinstance(value, int), f"give an int, got {type(value).__name__}"
    assert value == LORA_QV_PARAMS_SMOLLM2, ("count r·(in + out) for q_proj and v_proj in each of the 30 layers; "
                                            "with GQA v_proj maps 576 → 3 heads × 64 = 192")
    return f"{value:,} trainable parameters = {value / 134_515_008:.3%} of SmolLM2-135M"
