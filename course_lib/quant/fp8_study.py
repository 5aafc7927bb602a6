"""When does fine-grained FP8 scaling help? Error studies on synthetic outliers and on real activations.

DeepSeek-V3 §3.3.2 (*Fine-Grained Quantization*) scales activations per 1×128 tile and weights per
128×128 block because a per-tensor scale is set by the largest outlier. For an integer grid that
costs every ordinary value its resolution; E4M3 is a float format, so ordinary values keep their
3 mantissa bits until the scale pushes them below its smallest normal number (2^-6, i.e. outliers
more than 448 / 2^-6 ≈ 2.9×10^4 times the typical value). The two studies here measure that:

- :func:`outlier_error_study`: Gaussian activations with a few channels multiplied by a factor;
- :func:`real_activation_study`: the inputs of every linear layer of a real model (SmolLM2-135M in
  chapter 04c), multiplied by that layer's real weights.

Both compare ``X Wᵀ`` computed from the dequantized FP8 operands with the exact float64 product.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.quant.fp8 import E4M3, FloatFormat, fake_quantize
from course_lib.quant.fp8_gemm import relative_error


def dequantized_operands(x: torch.Tensor, w: torch.Tensor, block: int = 128,
                         fmt: FloatFormat = E4M3) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The fp32 values an FP8 GEMM ``x (M, K) · w (N, K)ᵀ`` multiplies, for two scaling schemes.

    ``"per_tensor"``: one scale for ``x`` and one for ``w``. ``"blockwise"``: 1×``block`` tiles of
    ``x`` and ``block``×``block`` blocks of ``w``. K and N need not be multiples of ``block``: the
    operands are zero-padded first (zeros change neither a tile's amax nor the product) and the
    padding is cut off again, so a partial tile at the end of K gets its own scale.
    """
    for name, t in (("x", x), ("w", w)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {getattr(t, 'dtype', type(t).__name__)}")
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x (M, K) and w (N, K) must share K, got {tuple(x.shape)} and {tuple(w.shape)}")
    k, n = x.shape[1], w.shape[0]
    x_pad = F.pad(x.float(), (0, -k % block))                 # (M, K')
    w_pad = F.pad(w.float(), (0, -k % block, 0, -n % block))  # (N', K')
    return {
        "per_tensor": (fake_quantize(x, None, fmt), fake_quantize(w, None, fmt)),
        "blockwise": (fake_quantize(x_pad, (1, block), fmt)[:, :k],
                      fake_quantize(w_pad, (block, block), fmt)[:n, :k]),
    }


def outlier_activations(m: int, k: int, n_outliers: int, factor: float,
                        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian activations ``(m, k)`` whose ``n_outliers`` random channels are ``factor``× larger.

    Returns ``(x, outlier_channels)``.
    """
    if not 0 <= n_outliers <= k:
        raise ValueError(f"n_outliers must be in [0, {k}], got {n_outliers}")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g)
    channels = torch.randperm(k, generator=g)[:n_outliers]
    x[:, channels] *= factor
    return x, channels


def outlier_error_study(factor: float, m: int = 256, k: int = 1024, n: int = 256, n_outliers: int = 4,
                        block: int = 128, fmt: FloatFormat = E4M3, seed: int = 0) -> dict[str, float]:
    """Relative error of ``X Wᵀ`` with per-tensor vs fine-grained (1×block tiles, block×block) FP8.

    Keys ``per_tensor`` and ``blockwise``: error of the whole output; ``per_tensor_regular`` and
    ``blockwise_regular``: error of the ordinary channels' contribution ``X[:, r] W[:, r]ᵀ`` (the
    operands are still quantized whole, so the outliers set the scales).
    """
    x, channels = outlier_activations(m, k, n_outliers, factor, seed)  # (m, k)
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed + 1)) / k**0.5  # (n, k)
    regular = torch.ones(k, dtype=torch.bool)
    regular[channels] = False
    result = {}
    for suffix, cols in (("", slice(None)), ("_regular", regular)):
        exact = x[:, cols].double() @ w[:, cols].double().T  # (m, n)
        for name, (xq, wq) in dequantized_operands(x, w, block, fmt).items():
            result[name + suffix] = relative_error(xq[:, cols] @ wq[:, cols].T, exact)
    return result


def capture_linear_inputs(model: nn.Module, *inputs, skip: tuple[str, ...] = ("lm_head",),
                          **kwargs) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Run ``model(*inputs, **kwargs)`` once; return ``{name: (x (tokens, in), weight (out, in))}``.

    One entry per ``nn.Linear`` whose name does not contain a string of ``skip``; ``x`` is the
    layer's input with all leading dimensions flattened into tokens. The hooks are removed afterwards.
    """
    captured, handles = {}, []

    def hook(name):
        def store(module, args, output):
            captured[name] = (args[0].detach().reshape(-1, args[0].shape[-1]).float(), module.weight.detach())
        return store

    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and not any(s in name for s in skip):
            handles.append(module.register_forward_hook(hook(name)))
    if not handles:
        raise ValueError("model has no nn.Linear layers to capture (after skipping "
                         f"names containing {skip})")
    try:
        with torch.no_grad():
            model(*inputs, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return captured


@dataclass
class LayerError:
    """FP8 GEMM error of one linear layer on its real input."""

    name: str             # module name, e.g. "model.layers.11.mlp.down_proj"
    kind: str             # last part of the name: "q_proj", "down_proj", ...
    layer: int            # block index (-1 if the name has none)
    outlier_ratio: float  # max |x| / median |x| of the input: how extreme its outliers are
    per_tensor: float     # relative error of x·Wᵀ, per-tensor scales
    blockwise: float      # relative error of x·Wᵀ, 1×128 tiles / 128×128 blocks

    @property
    def ratio(self) -> float:
        """blockwise / per-tensor error (below 1: fine-grained scaling helps)."""
        return self.blockwise / self.per_tensor


def real_activation_study(model: nn.Module, input_ids: torch.Tensor, block: int = 128,
                          fmt: FloatFormat = E4M3) -> list[LayerError]:
    """Per-tensor vs fine-grained FP8 error of every linear layer (except the head) on real inputs."""
    rows = []
    for name, (x, w) in capture_linear_inputs(model, input_ids).items():
        exact = x.double() @ w.double().T  # (tokens, out)
        errors = {scheme: relative_error(xq @ wq.T, exact)
                  for scheme, (xq, wq) in dequantized_operands(x, w, block, fmt).items()}
        magnitude = x.abs()
        layer = re.search(r"\.(\d+)\.", name)
        rows.append(LayerError(name, name.rsplit(".", 1)[-1], int(layer.group(1)) if layer else -1,
                               (magnitude.max() / magnitude.median().clamp_min(1e-30)).item(), **errors))
    return rows
