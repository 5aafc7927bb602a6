"""Weight-only int8 linears for serving: per-output-channel absmax scales (LLM.int8's vector-wise
quantization without the outlier split, Dettmers et al. 2022 §3.1; the "W8A16" scheme of
gpt-fast / torchao's ``int8_weight_only``).

Each output row ``j`` of ``W (out, in)`` gets a scale ``s_j = max_i |W_ji| / 127`` and int8 codes
``q_ji = round(W_ji / s_j)``, so ``|W_ji - s_j q_ji| ≤ s_j / 2``. Because ``s_j`` is per output::

    y_j = Σ_i x_i W_ji ≈ s_j · Σ_i x_i q_ji          # (…, in) @ (in, out) then × s (out,)

Activations stay in floating point ("weight-only"). A decode step on one CPU core is bound by
reading weights, and int8 reads 4× fewer bytes than fp32. Two compute paths:

- ``kernel=True``: torch's packed int8 kernel ``torch._weight_int8pack_mm`` (the one torchao uses),
  with bf16 activations (its fast CPU path; fp32 activations are much slower there);
- ``kernel=False``: ``F.linear(x, q.float()) * s`` in fp32: the exact maths of the int8 weights
  (the reference the kernel is tested against), but it rebuilds an fp32 weight every call.

:func:`quantize_int8` swaps every plain ``nn.Linear`` of a model in place (the tied embedding /
output head stays fp32, as in :func:`course_lib.quant.fp8_linear.convert_to_fp8`).
"""

from __future__ import annotations

import fnmatch

import torch
import torch.nn.functional as F
from torch import nn


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight`` ``(out, in)`` -> int8 codes ``(out, in)`` and fp32 scales ``(out,)`` (absmax / 127 per row)."""
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.is_floating_point():
        raise TypeError("weight must be a floating-point tensor of shape (out_features, in_features)")
    scale = weight.detach().abs().amax(dim=1).float().clamp(min=1e-12) / 127  # (out,)
    codes = torch.round(weight.detach().float() / scale[:, None]).clamp(-127, 127).to(torch.int8)  # (out, in)
    return codes, scale


class Int8Linear(nn.Module):
    """Inference-only linear with int8 weights ``(out, in)`` and per-output-channel scales ``(out,)``."""

    def __init__(self, codes: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None,
                 kernel: bool = True):
        super().__init__()
        self.out_features, self.in_features = codes.shape
        self.register_buffer("weight_int8", codes)           # (out, in) int8
        self.register_buffer("scale", scale)                 # (out,) fp32
        self.register_buffer("scale_bf16", scale.bfloat16(), persistent=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.kernel = kernel

    @classmethod
    def from_linear(cls, linear: nn.Linear, kernel: bool = True) -> Int8Linear:
        """Quantize an ``nn.Linear``'s weight (the bias stays in floating point)."""
        codes, scale = quantize_per_channel(linear.weight)
        return cls(codes, scale, linear.bias, kernel)

    def dequantized_weight(self) -> torch.Tensor:
        """``s_j · q_ji`` ``(out, in)`` in fp32: the weight this layer computes with."""
        return self.weight_int8.float() * self.scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(…, in)`` -> ``(…, out)`` in ``x``'s dtype."""
        flat = x.reshape(-1, self.in_features)  # (N, in)
        if self.kernel:
            y = torch._weight_int8pack_mm(flat.bfloat16(), self.weight_int8, self.scale_bf16).to(x.dtype)
        else:
            y = F.linear(flat, self.weight_int8.to(x.dtype)) * self.scale.to(x.dtype)  # (N, out)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, kernel={self.kernel}"


def quantize_int8(model: nn.Module, kernel: bool = True, exclude: tuple[str, ...] = ("lm_head", "*.lm_head")
                  ) -> list[str]:
    """Replace, in place, every plain ``nn.Linear`` of ``model`` (names not matching ``exclude``) by an
    :class:`Int8Linear`; returns the names replaced. The model is for inference only afterwards."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    targets = [(name, module) for name, module in model.named_modules()
               if name and type(module) is nn.Linear and not any(fnmatch.fnmatch(name, p) for p in exclude)]
    for name, module in targets:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, Int8Linear.from_linear(module, kernel))
    return [name for name, _ in targets]


def weight_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and persistent buffers (fp32 linears vs int8 codes + scales)."""
    return sum(t.nbytes for t in model.state_dict().values())
