"""FP8 GEMM emulation: limited-precision tensor-core accumulation and FP32 promotion (DeepSeek-V3 §3.3.2).

The problem ("increasing accumulation precision"): on H800 the FP8 tensor cores accumulate the
products in a register that keeps only about 14 significant bits, far fewer than FP32's 24. Over
a long inner dimension K the running sum loses the low bits of every addition; the paper measures
a maximum relative error near 2% at K = 4096. The fix: every N_C = 128 elements of K, copy the
partial sum to FP32 registers on the CUDA cores, multiply by the block's scales, and add it to an
FP32 accumulator — which is also where the per-tile / per-block scales get applied:

    C = Σ_k  (A_q[:, k-block] · B_q[:, k-block]ᵀ) · s_A[:, k] · s_B[k]          (every term in FP32)

**What is emulated, and what is assumed.** :func:`tensor_core_dot` keeps a running sum rounded
to ``accumulator_bits`` fraction bits after each step; each step adds ``mma_k`` products summed in
FP32 (one Hopper ``wgmma`` instruction covers k = 32 FP8 elements). The defaults — 13 fraction bits
(an FP22 1-8-13 accumulator, as measured by SageAttention2, Zhang et al. 2024, §3.3) and truncation
toward zero when bits fall off — are an inference from published measurements, not NVIDIA
documentation; the adder tree inside one instruction is not modelled. The emulation reproduces the
shape of the problem (error growing with K, gone with promotion); its size depends on the products
per step: 0.36% max relative error at K = 4096 on positive inputs with 32, 2.5% with 4 (paper: ~2%).
"""

from __future__ import annotations

import torch

from course_lib.quant.fp8 import round_to_bits

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)


def tensor_core_dot(a: torch.Tensor, b: torch.Tensor, accumulator_bits: int | None = 13,
                    mma_k: int = 32, rounding: str = "truncate") -> torch.Tensor:
    """``a @ bᵀ`` for ``a (M, K)``, ``b (N, K)`` with an accumulator of ``accumulator_bits`` fraction bits.

    ``accumulator_bits=None`` accumulates in plain FP32 (what promotion gives).
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a must be (M, K) and b (N, K) with the same K, got {tuple(a.shape)} and {tuple(b.shape)}")
    if mma_k <= 0:
        raise ValueError(f"mma_k must be positive, got {mma_k}")
    a, b = a.float(), b.float()
    if accumulator_bits is None:
        return a @ b.T  # (M, N)
    acc = torch.zeros(a.shape[0], b.shape[0], device=a.device)  # (M, N)
    for k0 in range(0, a.shape[1], mma_k):
        step = a[:, k0:k0 + mma_k] @ b[:, k0:k0 + mma_k].T  # (M, N): one instruction's products
        acc = round_to_bits(acc + step, accumulator_bits, rounding=rounding)
    return acc


def _scale_grid(scale: torch.Tensor, rows: int, k: int, name: str) -> tuple[torch.Tensor, int]:
    """Return ``scale`` as ``(rows, K-blocks)`` (rows expanded) and the K-block length it implies."""
    if not isinstance(scale, torch.Tensor) or not scale.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {getattr(scale, 'dtype', type(scale).__name__)}")
    s = scale.float().reshape(1, 1) if scale.dim() == 0 else scale.float()
    if s.dim() != 2 or rows % s.shape[0] or k % s.shape[1]:
        raise ValueError(f"{name} of shape {tuple(scale.shape)} does not tile a ({rows}, {k}) operand; "
                         f"use () per tensor, (rows, 1) per row, or (rows/r, K/block) per block")
    return s.repeat_interleave(rows // s.shape[0], dim=0), k // s.shape[1]  # (rows, K-blocks)


def fp8_gemm(a: torch.Tensor, a_scale: torch.Tensor, b: torch.Tensor, b_scale: torch.Tensor,
             accumulator_bits: int | None = None, promote_every: int | None = 128, mma_k: int = 32) -> torch.Tensor:
    """Scaled FP8 GEMM ``(a · s_a) @ (b · s_b)ᵀ`` in FP32, ``a (M, K)``, ``b (N, K)`` of a float8 dtype.

    Scales: ``()`` per tensor, ``(M, 1)``/``(N, 1)`` per row, or per block with K-blocks equal to
    ``promote_every`` (``a_scale (M, K/128)`` for 1×128 tiles, ``b_scale (N/128, K/128)`` for
    128×128 blocks, as in DeepSeek-V3's ``fp8_gemm`` kernel). Each ``promote_every`` slice of K is
    accumulated by :func:`tensor_core_dot` (``accumulator_bits`` as there), then scaled and added
    in FP32. ``promote_every=None`` accumulates all of K in the tensor core (no promotion), which
    needs scales that are constant along K.
    """
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.dtype not in FP8_DTYPES:
            raise TypeError(f"{name} must be a float8 tensor (float8_e4m3fn / float8_e5m2), got "
                            f"{getattr(t, 'dtype', type(t).__name__)}")
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
    (m, k), (n, k_b) = a.shape, b.shape
    if k != k_b:
        raise ValueError(f"a (M, K) and b (N, K) must share K, got {tuple(a.shape)} and {tuple(b.shape)}")
    sa, block_a = _scale_grid(a_scale, m, k, "a_scale")  # (M, K/block_a)
    sb, block_b = _scale_grid(b_scale, n, k, "b_scale")  # (N, K/block_b)
    chunk = k if promote_every is None else promote_every
    if chunk <= 0 or k % chunk:
        raise ValueError(f"promote_every={promote_every} must be a positive divisor of K={k}")
    for name, block in (("a_scale", block_a), ("b_scale", block_b)):
        if block != k and block != chunk:
            raise ValueError(f"{name} changes every {block} elements of K, so partial sums must be promoted "
                             f"(and scaled) every {block}; got promote_every={promote_every}")
    out = torch.zeros(m, n, device=a.device)  # (M, N) FP32 accumulator on the CUDA cores
    for c, k0 in enumerate(range(0, k, chunk)):
        partial = tensor_core_dot(a[:, k0:k0 + chunk], b[:, k0:k0 + chunk], accumulator_bits, mma_k)  # (M, N)
        out += partial * sa[:, c * chunk // block_a, None] * sb[None, :, c * chunk // block_b]
    return out


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """‖approx − exact‖_F / ‖exact‖_F, computed in float64."""
    if approx.shape != exact.shape:
        raise ValueError(f"shapes differ: {tuple(approx.shape)} vs {tuple(exact.shape)}")
    exact = exact.double()
    return ((approx.double() - exact).norm() / exact.norm()).item()
