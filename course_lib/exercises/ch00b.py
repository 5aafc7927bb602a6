"""Exercise checks for chapter 00b (attention widgets): previous-token score, entropy, weights by hand."""

from __future__ import annotations

import math

import numpy as np
import torch

from course_lib.exercises import exercise


def _causal_maps(seed: int = 0, L: int = 2, H: int = 3, T: int = 7) -> np.ndarray:
    """``(L, H, T, T)`` causal attention as the widget stores it (NaN above the diagonal), head 1 of layer 1
    a perfect previous-token head."""
    from course_lib.attention import causal_mask, scaled_dot_product_attention
    from course_lib.viz import attention_data

    g = torch.Generator().manual_seed(seed)
    layers = []
    for _ in range(L):
        q, k = torch.randn(1, H, T, 4, generator=g), torch.randn(1, H, T, 4, generator=g)
        layers.append(scaled_dot_product_attention(q, k, k, mask=causal_mask(T))[1])
    previous = torch.zeros(T, T)
    previous[0, 0] = 1.0
    previous[torch.arange(1, T), torch.arange(T - 1)] = 1.0
    layers[-1][0, 1] = previous
    return attention_data.prepare(tuple(layers), [str(i) for i in range(T)])["self"].weights


def _previous_reference(w: np.ndarray) -> np.ndarray:
    L, H, T, _ = w.shape
    return np.array([[np.mean([w[l, h, i, i - 1] for i in range(1, T)]) for h in range(H)] for l in range(L)])


def _score_self(w):  # the main diagonal: weight on the token itself
    return np.diagonal(w, offset=0, axis1=-2, axis2=-1).mean(axis=-1)


def _score_next(w):  # offset +1 lies in the masked triangle (NaN)
    return np.diagonal(w, offset=1, axis1=-2, axis2=-1).mean(axis=-1)


def _score_over_all_rows(w):  # divides by T although row 0 has no previous token
    return np.diagonal(w, offset=-1, axis1=-2, axis2=-1).sum(axis=-1) / w.shape[-1]


@exercise("00b.1", answer="previous_token_score", wrong=(_score_self, _score_next, _score_over_all_rows))
def check_previous_token_score(fn) -> str:
    """Check exercise 00b.1: the learner's previous-token-head score against an element-wise loop."""
    w = _causal_maps()
    got = np.asarray(fn(w.copy()), dtype=np.float64)
    want = _previous_reference(w)
    assert got.shape == want.shape, f"应返回 (L, H) = {want.shape}，得到 {got.shape}"
    assert np.isfinite(got).all(), "结果里有 NaN：只取第 i 行第 i−1 列（在对角线下方，不在被掩码的上三角）"
    worst = np.unravel_index(np.argmax(np.abs(got - want)), want.shape)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-9), \
        (f"layer {worst[0]} head {worst[1]}: 得到 {got[worst]:.4f}，逐元素循环（第 i 行第 i−1 列，i = 1…T−1 取平均）"
         f"得 {want[worst]:.4f}")
    assert abs(got[-1, 1] - 1.0) < 1e-6, "一个完美的「前一个词头」应得 1.0"
    return f"完美的前一个词头得 {got[-1, 1]:.3f}，随机头在 {got[0].min():.2f}–{got[0].max():.2f}"


def _entropy_reference(m: np.ndarray) -> float:
    p = torch.from_numpy(np.nan_to_num(m, nan=0.0)).double()
    return float(torch.distributions.Categorical(probs=p).entropy().mean())


def _entropy_naive(m):  # 0 · log 0 and NaN cells poison the sum
    return float(-(m * np.log(m)).sum(axis=-1).mean())


def _entropy_bits(m):  # log base 2 (bits), not nats
    p = np.nan_to_num(m, nan=0.0)
    return float(-(p * np.log2(np.clip(p, 1e-30, None))).sum(axis=-1).mean())


def _entropy_summed(m):  # sums the rows instead of averaging them
    p = np.nan_to_num(m, nan=0.0)
    return float(-(p * np.log(np.clip(p, 1e-30, None))).sum())


@exercise("00b.2", answer="head_entropy", wrong=(_entropy_naive, _entropy_bits, _entropy_summed))
def check_head_entropy(fn) -> str:
    """Check exercise 00b.2: the learner's mean attention entropy per head against a masked natural-log reference."""
    w = _causal_maps(seed=1)
    T = w.shape[-1]
    for l in range(w.shape[0]):
        for h in range(w.shape[1]):
            with np.errstate(all="ignore"):
                got = float(fn(w[l, h].copy()))
            want = _entropy_reference(w[l, h])
            assert math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-6), \
                f"layer {l} head {h}: 得到 {got:.5f}，应为 {want:.5f}（自然对数，0·log 0 = 0，NaN 格子不算，各行取平均）"
    uniform = np.full((T, T), 1.0 / T)
    assert math.isclose(float(fn(uniform)), math.log(T), rel_tol=1e-6), f"均匀注意力的熵应为 log T = {math.log(T):.4f}"
    return f"完美的前一个词头熵 = {abs(float(fn(w[-1, 1]))):.3f}，均匀的 {T} 列 = log {T} = {math.log(T):.3f}"


def _weights_unscaled(q, k, mask=None):  # forgets 1/sqrt(d_k)
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1)


def _weights_mask_after_softmax(q, k, mask=None):  # zeroes masked cells after softmax: rows no longer sum to 1
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
    return w if mask is None else w * mask


def _weights_scaled_by_d(q, k, mask=None):  # divides by d_k instead of sqrt(d_k)
    scores = q @ k.transpose(-2, -1) / q.shape[-1]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1)


@exercise("00b.3", answer="attention_weights",
          wrong=(_weights_unscaled, _weights_mask_after_softmax, _weights_scaled_by_d), writes_code=True)
def check_attention_weights(fn) -> str:
    """Check exercise 00b.3: the learner's softmax(QKᵀ/√d_k + M) against ``scaled_dot_product_attention``'s weights."""
    from course_lib.attention import causal_mask, scaled_dot_product_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    for mask in (None, causal_mask(5), (torch.rand(2, 1, 5, 5, generator=g) > 0.3) | torch.eye(5, dtype=torch.bool)):
        got = fn(q.clone(), k.clone(), mask)
        want = scaled_dot_product_attention(q, k, v, mask=mask)[1]
        assert isinstance(got, torch.Tensor) and got.shape == want.shape, f"应返回形状 {tuple(want.shape)}"
        where = "不带掩码" if mask is None else "带掩码"
        assert torch.allclose(got.sum(-1), torch.ones(want.shape[:-1]), atol=1e-5), \
            f"{where}时每一行的和应为 1（掩码要在 softmax 之前加 −∞）"
        assert torch.allclose(got, want, atol=1e-6, rtol=1e-5), \
            f"{where}时和 course_lib 的注意力权重最多差 {float((got - want).abs().max()):.3g}（检查缩放 1/√d_k）"
    return "softmax(QKᵀ/√d_k + M) 与 course_lib.attention.scaled_dot_product_attention 的权重一致（含两种掩码）"
