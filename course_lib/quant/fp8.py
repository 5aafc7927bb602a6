"""FP8 number formats and fine-grained (tile / block) quantization, as in DeepSeek-V3 §3.3.

A binary floating-point format with ``e`` exponent bits, ``m`` mantissa bits and bias ``b`` stores

    normal:     x = (-1)^s · 2^(E-b) · (1 + M/2^m)       (1 ≤ E, not the top code)
    subnormal:  x = (-1)^s · 2^(1-b) · (M/2^m)           (E = 0)

- **E4M3** (``torch.float8_e4m3fn``, OCP FP8 spec): e=4, m=3, b=7, no infinities, only
  S.1111.111 is NaN, so the largest value is 1.75·2^8 = **448**. The ``fn`` cast saturates:
  finite values past 448 and ±inf become ±448 (measured on torch 2.13, CPU).
- **E5M2** (``torch.float8_e5m2``): e=5, m=2, b=15, IEEE-like with ±inf; largest finite value
  1.75·2^15 = 57344; the cast overflows to ±inf (round to nearest even first).
- **BF16** (for comparison): e=8, m=7, b=127.

Scaling (DeepSeek-V3 §3.3.2 "fine-grained quantization"): a tensor is cut into blocks and every
block gets its own scale ``s = amax(|block|) / 448`` (computed from the current tensor, "online
quantization", §3.3.2), stored as ``q = round(x / s)`` in FP8 and read back as ``q · s``.
Activations use 1×128 tiles (per token, per 128 channels), weights 128×128 blocks; one scale for
the whole tensor (per-tensor scaling) is the baseline the paper improves on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FloatFormat:
    """A small floating-point format: exponent/mantissa bits, bias, largest value, inf and saturation behaviour."""
    name: str             # "E4M3", "E5M2", "BF16"
    exponent_bits: int    # e, width of the exponent field
    mantissa_bits: int    # m, stored fraction bits (the leading 1 of normals is implicit)
    bias: int             # exponent bias b
    max_value: float      # largest finite value
    has_inf: bool         # True: exponent field all ones means inf/NaN (IEEE); False: only S.1111.111 is NaN
    saturates: bool       # what torch's cast does past max_value: True -> ±max_value, False -> ±inf
    dtype: torch.dtype    # the torch dtype that stores this format

    @property
    def min_normal(self) -> float:
        """Smallest positive normal value, 2^(1-b)."""
        return 2.0 ** (1 - self.bias)

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value, 2^(1-b-m)."""
        return 2.0 ** (1 - self.bias - self.mantissa_bits)

    @property
    def epsilon(self) -> float:
        """Gap between 1 and the next value, 2^-m (relative precision of normals)."""
        return 2.0 ** -self.mantissa_bits

    @property
    def bits(self) -> int:
        """Total bits: sign + exponent + mantissa."""
        return 1 + self.exponent_bits + self.mantissa_bits


E4M3 = FloatFormat("E4M3", 4, 3, 7, 448.0, has_inf=False, saturates=True, dtype=torch.float8_e4m3fn)
E5M2 = FloatFormat("E5M2", 5, 2, 15, 57344.0, has_inf=True, saturates=False, dtype=torch.float8_e5m2)
BF16 = FloatFormat("BF16", 8, 7, 127, 3.3895313892515355e38, has_inf=True, saturates=False, dtype=torch.bfloat16)
FORMATS = {f.name: f for f in (E4M3, E5M2, BF16)}


def _check_format(fmt: FloatFormat) -> None:
    if not isinstance(fmt, FloatFormat):
        raise TypeError(f"fmt must be a FloatFormat such as E4M3 or E5M2, got {type(fmt).__name__}")


def decode(bits: int, fmt: FloatFormat) -> float:
    """The value of the bit pattern ``bits`` (an int in [0, 2^bits)) in ``fmt``, from the formula above."""
    _check_format(fmt)
    if not 0 <= bits < 2**fmt.bits:
        raise ValueError(f"bits must be in [0, {2**fmt.bits}) for {fmt.name}, got {bits}")
    sign = -1.0 if bits >> (fmt.bits - 1) else 1.0
    exponent = (bits >> fmt.mantissa_bits) & (2**fmt.exponent_bits - 1)
    mantissa = bits & (2**fmt.mantissa_bits - 1)
    top = 2**fmt.exponent_bits - 1
    if fmt.has_inf and exponent == top:
        return sign * math.inf if mantissa == 0 else math.nan
    if not fmt.has_inf and exponent == top and mantissa == 2**fmt.mantissa_bits - 1:
        return math.nan
    if exponent == 0:
        return sign * 2.0 ** (1 - fmt.bias) * (mantissa / 2**fmt.mantissa_bits)
    return sign * 2.0 ** (exponent - fmt.bias) * (1 + mantissa / 2**fmt.mantissa_bits)


def representable_values(fmt: FloatFormat) -> torch.Tensor:
    """All finite non-negative values of ``fmt``, sorted, as float64 (``(n,)``)."""
    _check_format(fmt)
    half = 2 ** (fmt.bits - 1)  # patterns with the sign bit clear
    values = [decode(b, fmt) for b in range(half)]
    return torch.tensor(sorted(v for v in values if math.isfinite(v)), dtype=torch.float64)


def round_to_bits(x: torch.Tensor, mantissa_bits: int, min_exponent: int | None = None,
                  rounding: str = "nearest") -> torch.Tensor:
    """Round ``x`` to ``mantissa_bits`` fraction bits (``mantissa_bits + 1`` significant bits).

    The quantum of a value with exponent E = floor(log2|x|) is 2^(E - m); ``min_exponent`` clamps
    E from below (that is where subnormals begin). ``rounding="nearest"`` ties to even
    (``torch.round``), ``"truncate"`` rounds toward zero. Exponent overflow is not handled here.
    """
    if rounding not in ("nearest", "truncate"):
        raise ValueError(f"rounding must be 'nearest' or 'truncate', got {rounding!r}")
    if mantissa_bits < 0:
        raise ValueError(f"mantissa_bits must be >= 0, got {mantissa_bits}")
    if x.dtype == torch.float32 and min_exponent is not None and min_exponent - mantissa_bits >= -126:
        # Fast path (every FP8 format): read E from the float32 bits; the quantum 2^(E-m) is a normal float32.
        magnitude = x.abs()
        exponent = ((magnitude.view(torch.int32) >> 23) - 127).clamp_min(min_exponent)  # E = floor(log2|x|)
        quantum = ((exponent - mantissa_bits + 127) << 23).view(torch.float32)  # 2^(E - m), built from bits
        steps = magnitude / quantum  # exact: division by a power of two
        steps = torch.round(steps) if rounding == "nearest" else torch.trunc(steps)
        return torch.copysign(steps * quantum, x)  # copysign keeps the sign of zeros too
    magnitude = x.abs().double()  # general path in fp64: 2^(m - E) must not overflow for tiny inputs
    _, exponent = torch.frexp(magnitude)  # |x| = f · 2^exponent with f in [0.5, 1)
    exponent = exponent - 1  # E with |x| in [2^E, 2^(E+1))
    if min_exponent is not None:
        exponent = exponent.clamp_min(min_exponent)
    steps = torch.ldexp(magnitude, (mantissa_bits - exponent).to(magnitude.dtype))  # |x| / quantum, exact
    steps = torch.round(steps) if rounding == "nearest" else torch.trunc(steps)
    rounded = torch.ldexp(steps, (exponent - mantissa_bits).to(magnitude.dtype))
    return torch.copysign(rounded.to(x.dtype), x)


def round_to_format(x: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """The value ``x.to(fmt.dtype)`` would hold, computed in ``x``'s dtype from the bit layout.

    Round to nearest, ties to even; subnormals below 2^(1-b); past ``max_value``: ±max_value if
    ``fmt.saturates`` (E4M3 fn: also ±inf -> ±448) else ±inf; NaN stays NaN.
    Matches torch's cast bit for bit (tests/test_fp8.py).
    """
    _check_format(fmt)
    if not isinstance(x, torch.Tensor) or x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be a float32 or float64 tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    rounded = round_to_bits(x, fmt.mantissa_bits, min_exponent=1 - fmt.bias)
    overflow = (rounded.abs() > fmt.max_value) | torch.isinf(x)
    limit = fmt.max_value if fmt.saturates else math.inf
    rounded = torch.where(overflow, torch.copysign(torch.full_like(x, limit), x), rounded)
    return torch.where(torch.isnan(x), x, rounded)


# ---- scaling: per tensor, 1×128 tiles, 128×128 blocks --------------------------------------------

def _check_blocks(x: torch.Tensor, block_shape: tuple[int, int] | None, name: str = "x") -> tuple[int, int]:
    """Validate ``x`` and return the block shape (rows, cols) over its last two dimensions."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        raise TypeError(f"{name} must be a floating-point tensor (fp32/fp64/bf16/fp16), got {x.dtype}")
    if x.dim() < 1:
        raise ValueError(f"{name} must have at least one dimension, got a scalar")
    if block_shape is None:  # per tensor: one block covering the last two dims, one scale per leading index
        return (x.shape[-2] if x.dim() >= 2 else 1, x.shape[-1])
    if len(block_shape) != 2 or any(not isinstance(b, int) or b <= 0 for b in block_shape):
        raise ValueError(f"block_shape must be (rows, cols) of positive ints or None, got {block_shape!r}")
    rows, cols = block_shape
    if x.shape[-1] % cols:
        raise ValueError(f"{name}.shape[-1]={x.shape[-1]} is not a multiple of the block size {cols}; "
                         f"pad {name} or choose a block that divides it")
    if rows > 1 and (x.dim() < 2 or x.shape[-2] % rows):
        got = x.shape[-2] if x.dim() >= 2 else "missing"
        raise ValueError(f"{name}.shape[-2]={got} is not a multiple of the block rows {rows}")
    return rows, cols


def _blocked(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """View ``(..., R, C)`` as ``(..., R/rows, rows, C/cols, cols)``."""
    x2 = x if x.dim() >= 2 else x.unsqueeze(0)
    *lead, r, c = x2.shape
    return x2.reshape(*lead, r // rows, rows, c // cols, cols)


def _scale_blocks(x: torch.Tensor, block_shape: tuple[int, int] | None,
                  fmt: FloatFormat) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocks of ``x`` divided by their scales and rounded to ``fmt``, and the scales (both blocked views)."""
    _check_format(fmt)
    if fmt.max_value > 2**16:
        raise ValueError(f"scaled quantization needs an FP8-range format such as E4M3 or E5M2, got {fmt.name} "
                         f"(amax / {fmt.max_value:.3g} would underflow)")
    rows, cols = _check_blocks(x, block_shape)
    blocks = _blocked(x.float(), rows, cols)  # (..., R/rows, rows, C/cols, cols)
    amax = blocks.abs().amax(dim=(-3, -1), keepdim=True).clamp_min(1e-12)  # (..., R/rows, 1, C/cols, 1)
    scale = amax / fmt.max_value
    return round_to_format(blocks / scale, fmt), scale


def quantize(x: torch.Tensor, block_shape: tuple[int, int] | None = None,
             fmt: FloatFormat = E4M3) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``x`` to ``fmt`` with one scale per block; return ``(q, scale)``.

    ``block_shape=None`` scales per tensor (``scale`` has shape ``()`` for 1-D/2-D ``x``, one per
    leading index otherwise); ``(1, 128)`` gives 1×128 tiles, ``(128, 128)`` blocks over the last two
    dimensions, ``scale`` of shape ``(..., R/rows, C/cols)``. ``scale = amax / fmt.max_value`` (amax
    clamped to ≥ 1e-12 so an all-zero block gives q = 0, not NaN); ``q`` has dtype ``fmt.dtype``.
    """
    rounded, scale = _scale_blocks(x, block_shape, fmt)
    q = rounded.to(fmt.dtype).reshape(x.shape)  # exact: the values are already representable
    scale = scale.squeeze(-1).squeeze(-2)  # (..., R/rows, C/cols)
    if block_shape is None:
        scale = scale.reshape(scale.shape[:-2])  # (...) — () for a matrix
    elif x.dim() == 1:
        scale = scale.squeeze(0)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor, block_shape: tuple[int, int] | None = None) -> torch.Tensor:
    """``q · scale`` in fp32, each block multiplied by its own scale (inverse of :func:`quantize`)."""
    if not isinstance(q, torch.Tensor) or not isinstance(scale, torch.Tensor):
        raise TypeError("q and scale must be torch.Tensors")
    if q.dtype not in (torch.float8_e4m3fn, torch.float8_e5m2):
        raise TypeError(f"q must be a float8 tensor (float8_e4m3fn or float8_e5m2), got {q.dtype}")
    rows, cols = _check_blocks(q.float(), block_shape, name="q")
    blocks = _blocked(q.float(), rows, cols)  # (..., R/rows, rows, C/cols, cols)
    expected = blocks.shape[:-3] + blocks.shape[-2:-1]
    if block_shape is None:
        expected = expected[:-2] if q.dim() >= 2 else ()
    elif q.dim() == 1:
        expected = expected[1:]
    if tuple(scale.shape) != tuple(expected):
        raise ValueError(f"scale has shape {tuple(scale.shape)}, expected {tuple(expected)} for q of shape "
                         f"{tuple(q.shape)} and block_shape {block_shape}")
    s = scale.float().reshape(blocks.shape[:-4] + (blocks.shape[-4], 1, blocks.shape[-2], 1))
    return (blocks * s).reshape(q.shape)


def fake_quantize(x: torch.Tensor, block_shape: tuple[int, int] | None = None, fmt: FloatFormat = E4M3) -> torch.Tensor:
    """``dequantize(quantize(x))`` in one pass: the fp32 values an FP8 kernel would actually compute with."""
    rounded, scale = _scale_blocks(x, block_shape, fmt)
    return (rounded * scale).reshape(x.shape)


def quantize_per_tensor(x: torch.Tensor, fmt: FloatFormat = E4M3) -> tuple[torch.Tensor, torch.Tensor]:
    """One scale for the whole tensor (the baseline DeepSeek-V3 improves on)."""
    q, scale = quantize(x.reshape(1, -1) if x.dim() > 2 else x, None, fmt)
    return q.reshape(x.shape), scale


def quantize_tiles(x: torch.Tensor, tile: int = 128, fmt: FloatFormat = E4M3) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations: one scale per 1×``tile`` slice of the last dimension; scale ``(..., C/tile)``."""
    return quantize(x, (1, tile), fmt)


def quantize_blocks(w: torch.Tensor, block: int = 128, fmt: FloatFormat = E4M3) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``(N, K)``: one scale per ``block``×``block`` block; scale ``(N/block, K/block)``."""
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        raise ValueError(f"w must be a 2-D weight matrix (N, K), got {getattr(w, 'shape', type(w).__name__)}")
    return quantize(w, (block, block), fmt)
