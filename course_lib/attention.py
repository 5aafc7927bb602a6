"""Attention, the one operation every chapter builds on.

Vaswani et al. 2017, §3.2.1 (scaled dot-product attention):

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V

Masks follow one convention across the course: a **boolean mask is True where attention is
allowed** (like ``F.scaled_dot_product_attention``); a float mask is added to the scores
(0 = keep, -inf = block). Shapes: ``q`` is ``(..., T_q, d_k)``, ``k`` is ``(..., T_k, d_k)``,
``v`` is ``(..., T_k, d_v)``, masks broadcast to ``(..., T_q, T_k)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., T, d), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share the last dimension d_k, got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same length T_k, got {k.shape[-2]} and {v.shape[-2]}")


def _check_mask(mask: torch.Tensor, t_q: int, t_k: int) -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"mask must be bool (True = attend) or float (added to scores), got {mask.dtype}")
    if mask.dim() < 2 or mask.shape[-2] not in (1, t_q) or mask.shape[-1] not in (1, t_k):
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to (..., {t_q}, {t_k})")


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(output, weights)``: output ``(..., T_q, d_v)`` and weights ``(..., T_q, T_k)``.

    ``scale`` defaults to 1/√d_k. Rows whose keys are all masked give zeros (not NaN).
    """
    _check_qkv(q, k, v)
    t_q, t_k = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., T_q, T_k)
    if mask is not None:
        _check_mask(mask, t_q, t_k)
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = torch.softmax(scores, dim=-1)
    weights = torch.nan_to_num(weights, nan=0.0)  # fully masked rows: -inf everywhere -> NaN -> 0
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)


def causal_mask(t_q: int, t_k: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T_q, T_k)`` mask, True on and below the diagonal (query i sees keys ≤ i).

    When ``T_k > T_q`` (decoding with a cache) the queries are the last ``T_q`` positions.
    """
    t_k = t_q if t_k is None else t_k
    if t_q <= 0 or t_k < t_q:
        raise ValueError(f"causal_mask needs 0 < t_q <= t_k, got t_q={t_q}, t_k={t_k}")
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Boolean ``(B, 1, 1, T)`` key mask from token ids ``(B, T)``: True where the key is not padding."""
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape (B, T), got {tuple(tokens.shape)}")
    return (tokens != pad_id)[:, None, None, :]
