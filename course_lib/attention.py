"""Attention, the one operation every chapter builds on.

Vaswani et al. 2017, §3.2.1 (scaled dot-product attention):

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V

Masks follow one convention across the course: a **boolean mask is True where attention is
allowed** (like ``F.scaled_dot_product_attention``); a float mask is added to the scores
(0 = keep, -inf = block). Shapes: ``q`` is ``(..., T_q, d_k)``, ``k`` is ``(..., T_k, d_k)``,
``v`` is ``(..., T_k, d_v)``, masks broadcast to ``(..., T_q, T_k)``.

Also here: :class:`MultiHeadAttention` (§3.2.2, self and cross; loads ``torch.nn.MultiheadAttention``
weights through :data:`TORCH_MHA_NAMES`) and :func:`blockwise_attention`, the online-softmax form
that never materialises the ``(T_q, T_k)`` matrix (the FlashAttention idea).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    causal: bool = False,
    need_weights: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Multi-head attention ``(B, H, T_q, d)`` by our explicit path when the weights are wanted, else torch's fused kernel.

    Both compute the same numbers (tests compare them for every model): ``need_weights=True`` runs
    :func:`scaled_dot_product_attention` and returns ``(out, weights)``; otherwise
    ``F.scaled_dot_product_attention`` returns ``(out, None)``. ``causal`` adds the causal mask
    (queries are the last T_q positions); fewer key/value heads than query heads is grouped-query
    attention, each key/value head serving ``H / H_kv`` consecutive query heads.
    """
    t_q, t_k = q.shape[-2], k.shape[-2]
    groups = q.shape[-3] // k.shape[-3]
    fused_causal = causal and mask is None and t_q == t_k and not need_weights
    if causal and not fused_causal and t_q > 1:
        allowed = causal_mask(t_q, t_k, device=q.device)  # (T_q, T_k)
        if mask is None:
            mask = allowed
        elif mask.dtype == torch.bool:
            mask = mask & allowed
        else:
            mask = mask.masked_fill(~allowed, float("-inf"))
    if need_weights:
        if groups > 1:  # repeat_kv in HF LLaMA
            k, v = k.repeat_interleave(groups, dim=-3), v.repeat_interleave(groups, dim=-3)  # (B, H, T_k, d)
        return scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=dropout_p, scale=scale)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=fused_causal,
                                         scale=scale, enable_gqa=groups > 1)
    return out, None


def causal_mask(t_q: int, t_k: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T_q, T_k)`` mask, True on and below the diagonal (query i sees keys ≤ i).

    When ``T_k > T_q`` (decoding with a cache) the queries are the last ``T_q`` positions.
    """
    t_k = t_q if t_k is None else t_k
    if t_q <= 0 or t_k < t_q:
        raise ValueError(f"causal_mask needs 0 < t_q <= t_k, got t_q={t_q}, t_k={t_k}")
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def left_padding_mask(attention_mask: torch.Tensor, past: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``(B, T)`` and boolean mask ``(B, 1, T, past + T)`` for the last T tokens of a left-padded batch.

    ``attention_mask`` ``(B, past + T)`` is 1 for real tokens, 0 for padding. Positions count real
    tokens only (as HF ``generate`` sets ``position_ids``), so a padded row computes what the same
    sequence computes alone; each query sees the real keys up to itself, and a padding query sees
    itself so no row is fully masked.
    """
    if attention_mask.dim() != 2 or attention_mask.shape[1] != past + t:
        raise ValueError(f"attention_mask must have shape (B, past + T) = (B, {past + t}), "
                         f"got {tuple(attention_mask.shape)}")
    keep = attention_mask.bool()  # (B, T_k)
    positions = (keep.long().cumsum(-1) - 1).clamp(min=0)[:, past:]  # (B, T)
    own = torch.arange(t, device=keep.device)[:, None] + past == torch.arange(past + t, device=keep.device)  # (T, T_k)
    mask = (causal_mask(t, past + t, device=keep.device) & keep[:, None, None, :]) | own  # (B, 1, T, T_k)
    return positions, mask


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Boolean ``(B, 1, 1, T)`` key mask from token ids ``(B, T)``: True where the key is not padding."""
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape (B, T), got {tuple(tokens.shape)}")
    return (tokens != pad_id)[:, None, None, :]


def blockwise_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    block_size: int = 128,
    scale: float | None = None,
) -> torch.Tensor:
    """Attention over key blocks with an online softmax: the FlashAttention idea (Dao et al. 2022, Alg. 1).

    The naive form materialises the ``(T_q, T_k)`` score matrix. Here keys and values are visited
    ``block_size`` at a time while a running maximum ``m``, normaliser ``ℓ`` and output
    accumulator ``o`` are kept per query (Milakov & Gimelshein 2018)::

        m' = max(m, rowmax(S_j)),   P_j = exp(S_j − m'),   c = exp(m − m')
        ℓ' = c·ℓ + rowsum(P_j),     o' = c·o + P_j V_j,     output = o / ℓ

    so only a ``(T_q, block_size)`` slice of scores lives at a time. Same arguments and mask
    convention as :func:`scaled_dot_product_attention`; returns only the output (the point is
    never to build the weights). Fully masked rows give zeros.
    """
    _check_qkv(q, k, v)
    if not isinstance(block_size, int) or block_size <= 0:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    t_q, t_k = q.shape[-2], k.shape[-2]
    if mask is not None:
        _check_mask(mask, t_q, t_k)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    m = q.new_full((*batch, t_q, 1), float("-inf"))  # running row max
    l = q.new_zeros((*batch, t_q, 1))  # running softmax denominator
    o = q.new_zeros((*batch, t_q, v.shape[-1]))  # running (unnormalised) output
    for start in range(0, t_k, block_size):
        end = min(start + block_size, t_k)
        s = (q @ k[..., start:end, :].transpose(-2, -1)) * scale  # (..., T_q, blk)
        if mask is not None:
            block_mask = mask if mask.shape[-1] == 1 else mask[..., start:end]
            s = s.masked_fill(~block_mask, float("-inf")) if mask.dtype == torch.bool else s + block_mask
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        m_safe = m_new.masked_fill(m_new == float("-inf"), 0.0)  # rows with nothing visible yet
        p = torch.exp(s - m_safe)  # (..., T_q, blk)
        correction = torch.exp(m - m_safe)
        l = l * correction + p.sum(dim=-1, keepdim=True)
        o = o * correction + p @ v[..., start:end, :]  # (..., T_q, d_v)
        m = m_new
    return torch.where(l > 0, o / l.clamp_min(torch.finfo(o.dtype).tiny), 0.0)


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al. 2017, §3.2.2)::

        MultiHead(Q, K, V) = Concat(head_1, …, head_h) W^O,  head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

    Self-attention when ``query is key is value``; cross-attention when key/value come from the
    encoder. ``q_proj``/``k_proj``/``v_proj``/``out_proj`` map to ``torch.nn.MultiheadAttention``'s
    fused ``in_proj_weight`` (rows ``[q; k; v]``) and ``out_proj`` (see :data:`TORCH_MHA_NAMES`).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if not isinstance(d_model, int) or not isinstance(num_heads, int) or d_model <= 0 or num_heads <= 0:
            raise ValueError(f"d_model and num_heads must be positive ints, got {d_model!r} and {num_heads!r}")
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, d_model // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, d_head)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``query`` ``(B, T_q, d_model)``, ``key``/``value`` ``(B, T_k, d_model)``; ``mask`` broadcasts to
        ``(B, H, T_q, T_k)`` (bool True = attend, or float added). Returns output ``(B, T_q, d_model)``
        and weights ``(B, H, T_q, T_k)``."""
        for name, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, torch.Tensor) or t.dim() != 3 or t.shape[-1] != self.d_model:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{name} must have shape (B, T, d_model={self.d_model}), got {shape}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(f"query/key/value batch and key/value lengths must agree, got "
                             f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
        if mask is not None:
            if not isinstance(mask, torch.Tensor):
                raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
            lead = (query.shape[0], self.num_heads)
            if mask.dim() > 4 or any(s not in (1, n) for s, n in zip(mask.shape[:-2][::-1], lead[::-1])):
                raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to "
                                 f"(B={lead[0]}, H={lead[1]}, {query.shape[1]}, {key.shape[1]})")
        q = self._split_heads(self.q_proj(query))  # (B, H, T_q, d_head)
        k = self._split_heads(self.k_proj(key))  # (B, H, T_k, d_head)
        v = self._split_heads(self.v_proj(value))  # (B, H, T_k, d_head)
        dropout_p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=dropout_p)
        out = out.transpose(1, 2).reshape(query.shape[0], query.shape[1], self.d_model)  # (B, T_q, d_model)
        return self.out_proj(out), weights


#: ours -> torch.nn.MultiheadAttention: (their name, row slice of the fused in-projection or None)
TORCH_MHA_NAMES = {
    "q_proj.weight": ("in_proj_weight", 0), "k_proj.weight": ("in_proj_weight", 1),
    "v_proj.weight": ("in_proj_weight", 2), "q_proj.bias": ("in_proj_bias", 0),
    "k_proj.bias": ("in_proj_bias", 1), "v_proj.bias": ("in_proj_bias", 2),
    "out_proj.weight": ("out_proj.weight", None), "out_proj.bias": ("out_proj.bias", None),
}


def mha_state_from_torch(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert a ``torch.nn.MultiheadAttention`` state dict to :class:`MultiHeadAttention` names."""
    missing = sorted({theirs for theirs, _ in TORCH_MHA_NAMES.values()} - set(state))
    if missing:
        raise ValueError(f"not a torch.nn.MultiheadAttention state dict (with biases): missing {missing}")
    return {ours: state[theirs] if part is None else state[theirs].chunk(3, dim=0)[part]
            for ours, (theirs, part) in TORCH_MHA_NAMES.items()}
