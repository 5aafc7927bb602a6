"""Random attention maps and exact-equality checks shared by the attention-widget tests."""

from __future__ import annotations

import numpy as np
import torch

from course_lib.attention import causal_mask, scaled_dot_product_attention
from course_lib.viz import attention_data as data

L, H, T = 4, 3, 6


def random_attentions(layers=L, heads=H, t_q=T, t_k=None, batch=2, causal=False):
    """Per-layer softmax weights from the course's own attention, (B, H, T_q, T_k) each."""
    t_k = t_q if t_k is None else t_k
    mask = causal_mask(t_q, t_k) if causal else None
    out = []
    for _ in range(layers):
        q, k = torch.randn(batch, heads, t_q, 8), torch.randn(batch, heads, t_k, 8)
        out.append(scaled_dot_product_attention(q, k, k, mask=mask)[1])
    return tuple(out)


def tokens(n, prefix="t"):
    return [f"{prefix}{i}" for i in range(n)]


def assert_same_map(shown: np.ndarray, expected: torch.Tensor, causal: bool):
    """Exact equality; with a causal mask the upper triangle must be NaN (masked), not 0."""
    expected = expected.detach().numpy().copy()
    if causal:
        t_q, t_k = expected.shape
        expected[data.causal_upper(t_q, t_k)] = np.nan
    np.testing.assert_array_equal(shown, expected)
