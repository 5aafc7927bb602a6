"""T5 attention with the relative-position bias (T5 paper §2.1), HF ``T5Attention`` parameter names.

Each attention adds a learned scalar per head and **relative-position bucket** to the scores,
``s_ij = q_i·k_j + b[bucket(j - i)]`` (no 1/√d scaling); buckets are exact for small distances and
logarithmic up to ``max_distance`` (:func:`relative_position_bucket`). The blocks that use these
sublayers are in :mod:`course_lib.models.t5`, which re-exports every name here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_lib.attention import attend
from course_lib.layers import RMSNorm
from course_lib.models.t5_config import T5Config


def relative_position_bucket(relative_position: torch.Tensor, bidirectional: bool = True,
                             num_buckets: int = 32, max_distance: int = 128) -> torch.Tensor:
    """Bucket of ``j - i`` (Mesh TensorFlow's ``_relative_position_bucket``, T5 §2.1).

    Bidirectional: half the buckets for j > i. In each half, distances < n/2 get their own bucket,
    the rest share log-spaced buckets up to ``max_distance`` (and the last bucket beyond it).
    Unidirectional (decoder): only j ≤ i counts, keys in the future land in bucket 0.
    """
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    log_ratio = torch.log(distance.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class T5Attention(nn.Module):
    """T5 attention: no 1/√d scaling, optional relative position bias (T5 §2.1)."""
    def __init__(self, config: T5Config, has_relative_attention_bias: bool = False, bidirectional: bool = True):
        super().__init__()
        self.config, self.n_heads, self.bidirectional = config, config.num_heads, bidirectional
        inner = config.num_heads * config.d_kv
        self.q = nn.Linear(config.d_model, inner, bias=False)
        self.k = nn.Linear(config.d_model, inner, bias=False)
        self.v = nn.Linear(config.d_model, inner, bias=False)
        self.o = nn.Linear(inner, config.d_model, bias=False)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(config.relative_attention_num_buckets, config.num_heads)

    def compute_bias(self, t_q: int, t_k: int, device=None) -> torch.Tensor:
        """Position bias ``(1, H, T_q, T_k)``: b[bucket(j - i)] for query i, key j; queries are the last T_q positions."""
        queries = torch.arange(t_k - t_q, t_k, device=device)  # (T_q,) after t_k - t_q cached positions
        rel = torch.arange(t_k, device=device)[None, :] - queries[:, None]  # (T_q, T_k)
        bucket = relative_position_bucket(rel, self.bidirectional, self.config.relative_attention_num_buckets,
                                          self.config.relative_attention_max_distance)
        return self.relative_attention_bias(bucket).permute(2, 0, 1).unsqueeze(0)  # (1, H, T_q, T_k)

    def project_kv(self, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``(B, H, S, Dkv)`` of the states ``kv`` ``(B, S, D)``."""
        B, S, _ = kv.shape
        return (self.k(kv).view(B, S, self.n_heads, -1).transpose(1, 2),  # (B, H, S, Dkv)
                self.v(kv).view(B, S, self.n_heads, -1).transpose(1, 2))

    def forward(self, x: torch.Tensor, kv, bias: torch.Tensor, need_weights: bool, cache=None, layer: int = 0):
        """``bias`` is added to the scores: position bias plus -inf where attention is not allowed.

        ``kv``: states ``(B, S, D)``, or their :meth:`project_kv` pair (the encoder memory's, computed
        once while decoding); ``cache`` (a :class:`course_lib.kv_cache.KVCache`) appends the new k, v.
        """
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.n_heads, -1).transpose(1, 2)  # (B, H, T, Dkv)
        k, v = kv if isinstance(kv, tuple) else self.project_kv(kv)  # (B, H, S, Dkv)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, H, past + T, Dkv)
        p = self.config.dropout_rate if self.training else 0.0
        out, weights = attend(q, k, v, bias, need_weights=need_weights, dropout_p=p, scale=1.0)  # (B, H, T, Dkv)
        return self.o(out.transpose(1, 2).reshape(B, T, -1)), weights  # (B, T, D), (B, H, T, S)


class T5LayerSelfAttention(nn.Module):
    """Pre-norm self-attention sublayer with residual (HF ``T5LayerSelfAttention``)."""
    def __init__(self, config: T5Config, has_relative_attention_bias: bool, bidirectional: bool):
        super().__init__()
        self.SelfAttention = T5Attention(config, has_relative_attention_bias, bidirectional)
        self.layer_norm = RMSNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x, bias, need_weights, cache=None, layer=0):
        """``x`` ``(B, T, D)`` → ``(x + attention, weights or None)``."""
        h = self.layer_norm(x)
        a, weights = self.SelfAttention(h, h, bias, need_weights, cache, layer)
        return x + self.dropout(a), weights


class T5LayerCrossAttention(nn.Module):
    """Pre-norm cross-attention sublayer with residual (HF ``T5LayerCrossAttention``)."""
    def __init__(self, config: T5Config):
        super().__init__()
        self.EncDecAttention = T5Attention(config)
        self.layer_norm = RMSNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x, memory, bias, need_weights):
        """Decoder states ``(B, T, D)`` attend to ``memory`` ``(B, S, D)``; returns ``(x + attention, weights or None)``."""
        a, weights = self.EncDecAttention(self.layer_norm(x), memory, bias, need_weights)
        return x + self.dropout(a), weights
