"""Simulated FP8 training of linear layers, following DeepSeek-V3 §3.3.1 (Figure 6).

All three GEMMs of a linear layer ``y = x Wᵀ`` take FP8 inputs and produce FP32 outputs:

    Fprop:  y  = Q_tile(x)  · Q_block(W)ᵀ           x tiles 1×128 along K, W blocks 128×128
    Dgrad:  dx = Q_tile(dy) · Q_block(W)            dy tiles 1×128 along N (the new inner dim)
    Wgrad:  dW = Q_tile(dyᵀ) · Q_tile(x̂ᵀ)ᵀ           both tiled along the tokens (128×1 tiles)

Scales are computed online from each tensor's current amax (§3.3.2). The 128×128 weight blocks
serve both W and Wᵀ, which is why weights use square blocks. The activation saved for Wgrad is the
FP8 one from Fprop (``x̂``, the paper caches activations in FP8), re-quantized along the token axis
("converted from a 1×128 tile to a 128×1 tile in the backward pass"). Master weights, weight
gradients and optimizer states stay FP32, as in the paper.

**Simulation, not FP8 arithmetic**: each operand is quantized and dequantized (values exactly
those an FP8 kernel sees), then multiplied in FP32 — equal to :func:`fp8_gemm` with FP32
accumulation up to the order of FP32 additions. Quantization is treated as identity in the
gradient (straight-through), because the backward pass is written out explicitly.
"""

from __future__ import annotations

import fnmatch

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.quant.fp8 import E4M3, FloatFormat, fake_quantize


def _tiles_along_rows(x: torch.Tensor, block: int, fmt: FloatFormat) -> torch.Tensor:
    """Fake-quantize ``x (R, C)`` in ``block``×1 tiles (along R), zero-padding R to a multiple of ``block``."""
    pad = -x.shape[0] % block
    xt = F.pad(x.T, (0, pad))  # (C, R + pad): zeros change neither amax nor products
    return fake_quantize(xt, (1, block), fmt)[:, : x.shape[0]].T  # (R, C)


class _FP8LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, block: int, fmt: FloatFormat):
        xq = fake_quantize(x, (1, block), fmt)  # (M, K) 1×128 tiles
        wq = fake_quantize(weight, (block, block), fmt)  # (N, K) 128×128 blocks
        ctx.save_for_backward(xq, wq)
        ctx.block, ctx.fmt = block, fmt
        return xq @ wq.T  # (M, N)

    @staticmethod
    def backward(ctx, grad_y):
        xq, wq = ctx.saved_tensors
        block, fmt = ctx.block, ctx.fmt
        grad_x = fake_quantize(grad_y, (1, block), fmt) @ wq  # Dgrad (M, K)
        grad_w = _tiles_along_rows(grad_y, block, fmt).T @ _tiles_along_rows(xq, block, fmt)  # Wgrad (N, K)
        return grad_x, grad_w, None, None


def fp8_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
               block: int = 128, fmt: FloatFormat = E4M3) -> torch.Tensor:
    """``x Wᵀ (+ b)`` with Fprop, Dgrad and Wgrad simulated in FP8; ``x (..., K)``, ``W (N, K)``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    if not isinstance(block, int) or block <= 0:
        raise ValueError(f"block must be a positive int, got {block!r}")
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"x (..., K) and weight (N, K) disagree: {tuple(x.shape)} vs {tuple(weight.shape)}")
    for name, size in (("in_features", weight.shape[1]), ("out_features", weight.shape[0])):
        if size % block:
            raise ValueError(f"{name}={size} is not a multiple of the FP8 block size {block}")
    y = _FP8LinearFunction.apply(x.reshape(-1, x.shape[-1]).float(), weight.float(), block, fmt)  # (M, N)
    y = y.reshape(*x.shape[:-1], weight.shape[0])  # (..., N)
    y = y if bias is None else y + bias.float()  # the bias add stays in high precision
    return y.to(x.dtype)  # FP32 GEMM output, handed back in the caller's dtype (BF16 in DeepSeek-V3)


class FP8Linear(nn.Linear):
    """``nn.Linear`` whose matmuls run in simulated FP8 (see the module docstring); same parameters."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, block: int = 128,
                 fmt: FloatFormat = E4M3, device=None, dtype=None):
        for name, size in (("in_features", in_features), ("out_features", out_features)):
            if size % block:
                raise ValueError(f"{name}={size} is not a multiple of the FP8 block size {block}")
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.block, self.fmt = block, fmt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y = x Wᵀ + b with x and W fake-quantized to FP8 by their block scales."""
        return fp8_linear(x, self.weight, self.bias, self.block, self.fmt)

    @classmethod
    def from_linear(cls, linear: nn.Linear, block: int = 128, fmt: FloatFormat = E4M3) -> FP8Linear:
        """An FP8Linear sharing ``linear``'s weight and bias Parameters (no copy)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, block=block, fmt=fmt,
                  device="meta")
        new.weight, new.bias = linear.weight, linear.bias
        return new

    def extra_repr(self) -> str:
        """Sizes, format and block size for ``print(module)``."""
        return f"{super().extra_repr()}, block={self.block}, fmt={self.fmt.name}"


def convert_to_fp8(model: nn.Module, block: int = 128, fmt: FloatFormat = E4M3,
                   exclude: tuple[str, ...] = ("lm_head", "*.lm_head")) -> list[str]:
    """Replace, in place, every plain ``nn.Linear`` of ``model`` by an :class:`FP8Linear` sharing its weights.

    Subclasses of ``nn.Linear`` (an FP8Linear already, a LoRA layer) are left alone.

    ``exclude`` holds ``fnmatch`` patterns of module names kept in high precision (DeepSeek-V3 keeps
    the embedding, the output head, MoE gates, norms and attention in BF16/FP32). Returns the names
    replaced. An included Linear whose sizes are not multiples of ``block`` raises ValueError.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    targets = [(name, module) for name, module in model.named_modules()
               if name and type(module) is nn.Linear and not any(fnmatch.fnmatch(name, p) for p in exclude)]
    for name, module in targets:
        if module.in_features % block or module.out_features % block:
            raise ValueError(f"{name} is Linear({module.in_features}, {module.out_features}): sizes must be "
                             f"multiples of block={block}; add it to exclude or change the model")
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child,
                FP8Linear.from_linear(module, block, fmt))
    return [name for name, _ in targets]
