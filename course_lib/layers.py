"""Layers shared by several models: RMSNorm (T5, LLaMA, DeepSeek), RoPE (LLaMA, DeepSeek), SwiGLU (LLaMA, DeepSeek).

- RMSNorm (Zhang & Sennrich 2019): y = x / sqrt(mean(x²) + ε) · g
- Rotary position embedding, RoPE (Su et al. 2021, RoFormer §3.4): rotate each pair of
  channels (x_a, x_b) by the angle m·θ_i, θ_i = base^(-2i/d). Two pairings exist in the wild:
  HF LLaMA pairs channel i with i + d/2 ("half"), the DeepSeek reference pairs 2i with 2i+1
  ("interleaved"). Both are here.
- SwiGLU feed-forward (Shazeer 2020): down(silu(gate(x)) ⊙ up(x)).

Parameter names follow the HF checkpoints (``weight``, ``gate_proj``, ``up_proj``, ``down_proj``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square LayerNorm without centring or bias; computed in fp32 like HF ``LlamaRMSNorm``."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        if dim <= 0:
            raise ValueError(f"RMSNorm dim must be positive, got {dim}")
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x / RMS(x) · g, computed in fp32 and cast back to x's dtype."""
        if x.shape[-1] != self.weight.shape[0]:
            raise ValueError(f"RMSNorm expects last dimension {self.weight.shape[0]}, got {x.shape[-1]}")
        # x / sqrt(mean(x²) + ε) in fp32 (the fused kernel computes exactly x * rsqrt(mean(x²) + ε))
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)
        return self.weight * normed.to(x.dtype)


def rope_inv_freq(head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """θ_i = base^(-2i/d) for i = 0 … d/2-1, shape ``(d/2,)``."""
    if head_dim <= 0 or head_dim % 2:
        raise ValueError(f"RoPE needs a positive even head_dim, got {head_dim}")
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))


def rope_cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of m·θ_i for every position m, each ``(T, d)`` in the "half" layout [θ; θ]."""
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, d)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x_1, x_2) -> (-x_2, x_1) on the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleaved: bool = False) -> torch.Tensor:
    """Rotate ``x`` of shape ``(B, H, T, d)`` by the angles in ``cos``/``sin`` ``(T, d)``.

    ``interleaved=True`` pairs channels (2i, 2i+1) as the DeepSeek reference does; it is computed by
    moving even channels to the first half and odd channels to the second half, rotating, and
    returning in that de-interleaved layout (as HF ``apply_rotary_pos_emb_interleave`` does; the
    dot products q·k are the same either way because q and k get the same permutation).
    """
    if x.shape[-1] != cos.shape[-1] or x.shape[-2] != cos.shape[-2]:
        raise ValueError(f"x {tuple(x.shape)} and cos/sin {tuple(cos.shape)} disagree on (T, d)")
    if interleaved:
        *lead, d = x.shape
        x = x.view(*lead, d // 2, 2).transpose(-1, -2).reshape(*lead, d)  # evens first, then odds
    return x * cos + rotate_half(x) * sin


class SwiGLU(nn.Module):
    """Gated feed-forward: down_proj(silu(gate_proj(x)) * up_proj(x)), no biases."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """down(silu(gate(x)) ⊙ up(x))."""
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
