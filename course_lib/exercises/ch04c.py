"""Exercise checks of chapter 04c (FP8): the E5M2 range, a row-wise scaled FP8 GEMM, power-of-two tile scales."""

from __future__ import annotations

import torch

from course_lib.exercises import exercise
from course_lib.quant.fp8 import E4M3, E5M2, fake_quantize, round_to_format
from course_lib.quant.fp8_gemm import relative_error


@exercise("04c.1", answer="e5m2_range", wrong=((114688.0, 2.0**-16), (57344.0, 2.0**-14), (448.0, 2.0**-9)))
def check_e5m2_range(value) -> str:
    """Check exercise 04c.1: the learner's E5M2 largest finite / smallest subnormal against ``torch.float8_e5m2``."""
    assert isinstance(value, tuple) and len(value) == 2, f"答案是一个二元组 (最大有限值, 最小正次正规数)，得到 {value!r}"
    largest, smallest = (float(v) for v in value)
    truth = torch.tensor([1], dtype=torch.uint8).view(torch.float8_e5m2).item()
    assert largest != 448.0, "448 是 E4M3 的最大值；E5M2 有 5 位指数、偏置 15"
    assert largest != 2.0**16 * 1.75, "E5M2 和 IEEE 一样，指数全 1 (11111) 留给 inf/NaN：最大的指数字段是 11110 = 30"
    assert largest == torch.finfo(torch.float8_e5m2).max == E5M2.max_value, \
        f"最大有限值应为 2^(30−15)·(1 + 3/4)，你的答案 {largest:g}"
    assert smallest != 2.0**-14, "2^-14 是最小正**正规**数；次正规数的指数字段为 0，尾数最小是 01"
    assert smallest == truth == E5M2.min_subnormal, f"最小正次正规数应为 2^(1−15)·(1/4)，你的答案 {smallest:g}"
    return f"E5M2 的范围是 {largest:g} 到 {smallest:g}（E4M3：448 到 {E4M3.min_subnormal:g}）"


def _per_tensor(a, b):  # wrong: one scale for the whole matrix
    sa, sb = a.abs().amax().reshape(1, 1) / 448, b.abs().amax().reshape(1, 1) / 448
    qa, qb = (a / sa).to(torch.float8_e4m3fn), (b / sb).to(torch.float8_e4m3fn)
    return (qa.float() @ qb.float().T) * sa * sb.T, (qa, sa, qb, sb)


def _scales_not_applied(a, b):  # wrong: multiplies the FP8 values but forgets to scale the product back
    sa, sb = a.abs().amax(1, keepdim=True) / 448, b.abs().amax(1, keepdim=True) / 448
    qa, qb = (a / sa).to(torch.float8_e4m3fn), (b / sb).to(torch.float8_e4m3fn)
    return qa.float() @ qb.float().T, (qa, sa, qb, sb)


@exercise("04c.2", answer="rowwise_fp8_matmul", wrong=(_per_tensor, _scales_not_applied), writes_code=True)
def check_rowwise_fp8_matmul(fn) -> str:
    """Check exercise 04c.2: the learner's row-wise scaled FP8 (E4M3) matmul against the fp32 product."""
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(64, 256, generator=g), torch.randn(128, 256, generator=g)
    a[3] *= 1e3  # one loud token: row-wise scaling keeps it from crushing the others
    out, (qa, sa, qb, sb) = fn(a, b)
    assert qa.dtype == qb.dtype == torch.float8_e4m3fn, f"qa、qb 应是 torch.float8_e4m3fn，得到 {qa.dtype}、{qb.dtype}"
    assert tuple(sa.shape) == (64, 1) and tuple(sb.shape) == (128, 1), \
        f"按行缩放：sa 形状 (M, 1) = (64, 1)，sb 形状 (N, 1) = (128, 1)，得到 {tuple(sa.shape)}、{tuple(sb.shape)}"
    torch.testing.assert_close(sa, a.abs().amax(1, keepdim=True) / 448, msg="每行的缩放因子应为 max|行| / 448")
    ref = torch._scaled_mm(qa, qb.T, sa.float(), sb.float().T.contiguous(), out_dtype=torch.float32)
    diff = (out - ref).abs().max().item()
    assert diff <= 1e-5 * ref.abs().max().item() + 1e-5, \
        f"与 torch._scaled_mm (RowWise) 相差 {diff:.3g}：乘积要乘回 sa · sbᵀ"
    err = relative_error(out, a.double() @ b.double().T)
    assert err < 0.05, f"相对 FP32 乘积的误差 {err:.2%}，E4M3 应在几个百分点以内"
    return f"与 torch._scaled_mm (RowWise) 一致（max |diff| {diff:.1e}），相对 FP32 误差 {err:.2%}"


@exercise("04c.3", answer="pow2_tile_scales",
          wrong=(lambda x: torch.exp2(torch.floor(torch.log2(x.view(*x.shape[:-1], -1, 128).abs().amax(-1) / 448))),
                 lambda x: x.view(*x.shape[:-1], -1, 128).abs().amax(-1) / 448))
def check_pow2_tile_scales(fn) -> str:
    """Check exercise 04c.3: the learner's power-of-two 1×128 tile scales (DeepSeek-V3 §3.3.2) against 2^ceil(log2(amax/448))."""
    xs = torch.randn(64, 512, generator=torch.Generator().manual_seed(3)) * 5
    s = fn(xs)
    assert tuple(s.shape) == (64, 4), f"每个 1×128 小块一个缩放因子：形状应为 (64, 4)，得到 {tuple(s.shape)}"
    assert torch.equal(s, torch.exp2(torch.log2(s).round())), "缩放因子应都是 2 的整数次幂"
    scaled = xs.view(64, 4, 128) / s[..., None]
    assert scaled.abs().max() <= 448, f"|x / s| 最大为 {scaled.abs().max():.1f} > 448：会饱和，应向上取整 (ceil)"
    amax = xs.view(64, 4, 128).abs().amax(-1)
    assert torch.all(s < 2 * amax / 448), "缩放因子比需要的大了一倍以上：取 2^ceil(log2(amax/448))，不要多乘 2"
    err_pow2 = relative_error((round_to_format(scaled, E4M3) * s[..., None]).view(64, 512), xs)
    err_exact = relative_error(fake_quantize(xs, (1, 128)), xs)
    assert err_pow2 < 1.5 * err_exact, f"误差 {err_pow2:.4f} 比 amax/448 缩放的 {err_exact:.4f} 大太多"
    return f"2 的幂缩放：误差 {err_pow2:.4f}，amax/448 缩放 {err_exact:.4f}；乘缩放因子只改指数"
