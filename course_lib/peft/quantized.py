"""A frozen base kept in the GGUF's own Q4_1 blocks, dequantized on the fly (QLoRA-style, Dettmers et al. 2023).

QLoRA keeps the pretrained weights in 4 bits and trains LoRA on top; each forward dequantizes the
weight it needs (§3 "QLoRA": ``Y = X · doubleDequant(...) + X L₁ L₂``). Here the 4-bit format is
the one SmolLM2's GGUF ships: ggml's ``Q4_1``, blocks of 32 weights along a row, each stored as
an fp16 scale d, an fp16 minimum m and 16 bytes of 4-bit codes q (``ggml-quants.c``,
``dequantize_row_q4_1``)::

    w[j]      = d · (qs[j] & 0x0F) + m        j = 0..15
    w[j + 16] = d · (qs[j] >> 4)   + m

20 bytes per 32 weights = 5 bits per weight, 6.4× less than fp32. :class:`Q4_1Linear` keeps
only those bytes; its autograd function dequantizes again in backward instead of saving the fp32
weight, so the full-precision matrix never outlives one layer's forward or backward.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BLOCK = 32          # weights per Q4_1 block
BLOCK_BYTES = 20    # fp16 d + fp16 m + 16 bytes of nibbles


def dequantize_q4_1(scales: torch.Tensor, mins: torch.Tensor, qs: torch.Tensor) -> torch.Tensor:
    """Blocks -> fp32 weight: scales, mins ``(out, nb)`` fp16, qs ``(out, nb, 16)`` uint8 -> ``(out, nb·32)``."""
    codes = torch.cat([qs & 0x0F, qs >> 4], dim=-1).float()  # (out, nb, 32): low nibbles first
    w = codes * scales.float()[..., None] + mins.float()[..., None]  # (out, nb, 32)
    return w.reshape(qs.shape[0], -1)


class _DequantLinear(torch.autograd.Function):
    """y = x Wᵀ with W rebuilt from its blocks in forward *and* backward (nothing fp32 is saved)."""

    @staticmethod
    def forward(ctx, x, scales, mins, qs):
        ctx.save_for_backward(scales, mins, qs)
        return F.linear(x, dequantize_q4_1(scales, mins, qs))

    @staticmethod
    def backward(ctx, grad_out):
        scales, mins, qs = ctx.saved_tensors
        return grad_out @ dequantize_q4_1(scales, mins, qs), None, None, None  # W is frozen: no grad for it


class Q4_1Linear(nn.Module):
    """A frozen, bias-free linear layer whose weight lives as Q4_1 blocks (buffers, not parameters)."""

    def __init__(self, scales: torch.Tensor, mins: torch.Tensor, qs: torch.Tensor):
        super().__init__()
        if qs.dtype != torch.uint8 or qs.dim() != 3 or qs.shape[-1] != BLOCK // 2:
            raise TypeError(f"qs must be uint8 of shape (out, blocks, 16), got {qs.dtype} {tuple(qs.shape)}")
        if scales.shape != qs.shape[:2] or mins.shape != qs.shape[:2]:
            raise ValueError(f"scales and mins must have shape (out, blocks) = {tuple(qs.shape[:2])}")
        self.register_buffer("scales", scales.to(torch.float16))
        self.register_buffer("mins", mins.to(torch.float16))
        self.register_buffer("qs", qs)
        self.out_features, self.in_features = qs.shape[0], qs.shape[1] * BLOCK

    @classmethod
    def from_blocks(cls, raw: np.ndarray) -> Q4_1Linear:
        """From a GGUF tensor's raw bytes, one row per output feature: ``(out, blocks·20)`` uint8."""
        if raw.dtype != np.uint8 or raw.ndim != 2 or raw.shape[1] % BLOCK_BYTES:
            raise ValueError(f"raw Q4_1 data must be uint8 (out, blocks·{BLOCK_BYTES}), got {raw.dtype} {raw.shape}")
        blocks = np.ascontiguousarray(raw).reshape(raw.shape[0], -1, BLOCK_BYTES)  # (out, nb, 20)
        scales = torch.from_numpy(blocks[..., 0:2].copy().view(np.float16)[..., 0])
        mins = torch.from_numpy(blocks[..., 2:4].copy().view(np.float16)[..., 0])
        return cls(scales, mins, torch.from_numpy(blocks[..., 4:].copy()))

    def dequantized_weight(self) -> torch.Tensor:
        return dequantize_q4_1(self.scales, self.mins, self.qs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _DequantLinear.apply(x, self.scales, self.mins, self.qs)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, format=Q4_1"


def smollm2_q4_1_blocks() -> dict[str, np.ndarray]:
    """SmolLM2's Q4_1 tensors as raw rows ``(out, blocks·20)`` under HF module names (q/k rows un-permuted)."""
    import gguf

    from course_lib import weights

    path = weights.smollm2_gguf_path()
    config = weights.smollm2_config()
    blocks = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        if t.tensor_type != gguf.GGMLQuantizationType.Q4_1:
            continue
        raw = torch.from_numpy(np.array(t.data))  # (out, blocks·20): rows move whole, so un-permute them as rows
        name = weights._hf_name(t.name).removesuffix(".weight")
        if name.endswith("q_proj"):
            raw = weights.unpermute_qk(raw, config["num_attention_heads"])
        elif name.endswith("k_proj"):
            raw = weights.unpermute_qk(raw, config["num_key_value_heads"])
        blocks[name] = raw.numpy()
    return blocks


def quantize_base(model: nn.Module, blocks: dict[str, np.ndarray] | None = None) -> list[str]:
    """Replace every linear layer of our SmolLM2 that the GGUF stores as Q4_1 by a :class:`Q4_1Linear`, in place."""
    blocks = smollm2_q4_1_blocks() if blocks is None else blocks
    replaced = []
    for name, raw in blocks.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        old = getattr(parent, child)
        if not isinstance(old, nn.Linear) or (old.out_features, old.in_features) != (raw.shape[0],
                                                                                     raw.shape[1] // 20 * 32):
            raise ValueError(f"{name}: expected nn.Linear({raw.shape[1] // 20 * 32}, {raw.shape[0]}), got {old}")
        setattr(parent, child, Q4_1Linear.from_blocks(raw))
        replaced.append(name)
    return replaced


def module_bytes(model: nn.Module) -> int:
    """Bytes held by a model's parameters and buffers (shared tensors counted once)."""
    seen, total = set(), 0
    for t in [*model.parameters(), *model.buffers()]:
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total
