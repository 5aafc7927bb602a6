"""Inference-time fused projections: one matmul for several linear layers that read the same input.

At batch 1 a decode step is a chain of small matrix-vector products, so each saved kernel launch
counts. q/k/v (and SwiGLU's gate/up) read the same input, so ``x @ cat([Wq; Wk; Wv])ᵀ`` gives all
three at once. The modules and their parameter names stay as they are (weights load by HF names;
LoRA replaces ``q_proj`` by name): the concatenated weight is a cache next to them, not a parameter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.layers import SwiGLU


def fused_weight(owner: nn.Module, linears: tuple[nn.Module, ...]) -> torch.Tensor | None:
    """Inference-only ``cat`` of bias-free ``nn.Linear`` weights (one matmul instead of several).

    Built lazily under ``torch.no_grad`` in eval mode and rebuilt when any source weight is replaced
    or changed in place (``_version``); ``None`` while training, with autograd on, once a module is
    no plain ``nn.Linear`` any more (e.g. LoRA replaced ``q_proj``) or has hooks (an activation
    capture must see every module called): callers then use the modules.
    """
    if owner.training or torch.is_grad_enabled() or any(
            type(m) is not nn.Linear or m.bias is not None or m._forward_hooks or m._forward_pre_hooks
            for m in linears):
        return None
    key = [(m.weight, m.weight._version) for m in linears]
    cached = owner.__dict__.get("_fused_cache")  # a plain attribute: never in state_dict or parameters()
    if cached is None or any(a is not b or va != vb for (a, va), (b, vb) in zip(cached[0], key)):
        cached = owner.__dict__["_fused_cache"] = (key, torch.cat([m.weight for m in linears]))
    return cached[1]


def swiglu(mlp: SwiGLU, x: torch.Tensor) -> torch.Tensor:
    """``mlp(x)``, with gate and up as one matmul at inference (:func:`fused_weight`)."""
    w = fused_weight(mlp, (mlp.gate_proj, mlp.up_proj))
    if w is None:
        return mlp(x)
    gate, up = F.linear(x, w).split(mlp.gate_proj.out_features, dim=-1)  # 2 × (B, T, I)
    return mlp.down_proj(F.silu(gate) * up)
