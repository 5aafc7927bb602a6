"""FP8 GEMM emulation and FP8Linear (course_lib.quant.fp8_gemm / fp8_linear), against torch.

References: ``torch._scaled_mm`` (TensorWise and RowWise scaling run on the CPU in torch 2.13; block scaling
does not, so block-scaled results are compared with explicit dequantize-then-matmul in float64), a scalar
pure-Python model of the limited-precision accumulator, and ``nn.Linear``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib.quant.fp8 import (
    BF16,
    E4M3,
    FloatFormat,
    decode,
    dequantize,
    fake_quantize,
    quantize,
    quantize_blocks,
    quantize_per_tensor,
    quantize_tiles,
    round_to_bits,
    round_to_format,
)
from course_lib.quant.fp8_gemm import fp8_gemm, relative_error, tensor_core_dot
from course_lib.quant.fp8_linear import FP8Linear, convert_to_fp8, fp8_linear

# ---- GEMM -----------------------------------------------------------------------------------------

def _operands(m=64, n=96, k=512, seed=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, k, generator=g), torch.randn(n, k, generator=g)


def test_per_tensor_gemm_matches_torch_scaled_mm():
    a, b = _operands()
    qa, sa = quantize_per_tensor(a)
    qb, sb = quantize_per_tensor(b)
    ours = fp8_gemm(qa, sa, qb, sb, promote_every=None)
    theirs = torch._scaled_mm(qa, qb.T, sa, sb, out_dtype=torch.float32)
    # Products of FP8 values are exact in FP32; only the order of K=512 FP32 additions differs:
    # rtol 1e-5 ≈ 80 ulp, atol 1e-5 × max|C| covers cancellation near zero.
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())
    promoted = fp8_gemm(qa, sa, qb, sb, promote_every=128)
    torch.testing.assert_close(promoted, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())


def test_rowwise_gemm_matches_torch_scaled_mm():
    a, b = _operands()
    qa, sa = quantize(a, (1, a.shape[1]))  # one scale per row = a 1×K tile
    qb, sb = quantize(b, (1, b.shape[1]))
    ours = fp8_gemm(qa, sa, qb, sb, promote_every=None)
    theirs = torch._scaled_mm(qa, qb.T, sa, sb.T.contiguous(), out_dtype=torch.float32)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())


def test_block_scaled_gemm_matches_dequantize_then_matmul():
    a, b = _operands(m=64, n=256, k=384)
    qa, sa = quantize_tiles(a)
    qb, sb = quantize_blocks(b)
    ours = fp8_gemm(qa, sa, qb, sb)
    reference = dequantize(qa, sa, (1, 128)).double() @ dequantize(qb, sb, (128, 128)).double().T
    # FP32 accumulation (3 promoted partial sums of 128 exact products) vs float64: rtol 1e-5.
    torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-5 * reference.abs().max().item())


def _python_accumulate(a, b, bits, mma_k):
    """Scalar model of the tensor core: exact 32-product steps, running sum truncated to `bits` bits."""
    def truncate(v):
        if v == 0.0:
            return 0.0
        f, e = math.frexp(abs(v))  # |v| = f · 2^e, f in [0.5, 1)
        return math.copysign(math.ldexp(math.trunc(math.ldexp(f, bits + 1)), e - bits - 1), v)

    out = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float64)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            acc = 0.0
            for k0 in range(0, a.shape[1], mma_k):
                step = sum(a[i, k].item() * b[j, k].item() for k in range(k0, k0 + mma_k))
                acc = truncate(acc + step)
            out[i, j] = acc
    return out


def test_tensor_core_dot_matches_scalar_model():
    # Values k·2^e with |k| ≤ 7 and e in [-2, 2]: every 32-product step is exact in FP32, so the
    # emulation must equal the scalar model exactly (rtol = atol = 0).
    g = torch.Generator().manual_seed(4)
    make = lambda *s: torch.randint(-7, 8, s, generator=g).double() * torch.exp2(torch.randint(-2, 3, s, generator=g))
    a, b = make(4, 512), make(3, 512)
    ours = tensor_core_dot(a, b, accumulator_bits=13, mma_k=32)
    torch.testing.assert_close(ours.double(), _python_accumulate(a, b, 13, 32), rtol=0, atol=0)


def test_promotion_fixes_accumulation_error():
    a, b = _operands(m=16, n=16, k=4096, seed=5)
    qa, sa = quantize_per_tensor(a)
    qb, sb = quantize_per_tensor(b)
    exact = qa.double() @ qb.double().T
    naive = relative_error(fp8_gemm(qa, 1 + 0 * sa, qb, 1 + 0 * sb, accumulator_bits=13, promote_every=None), exact)
    promoted = relative_error(fp8_gemm(qa, 1 + 0 * sa, qb, 1 + 0 * sb, accumulator_bits=13, promote_every=128), exact)
    fp32 = relative_error(fp8_gemm(qa, 1 + 0 * sa, qb, 1 + 0 * sb, accumulator_bits=None), exact)
    assert naive > 10 * promoted > 10 * fp32, (naive, promoted, fp32)


# ---- FP8Linear ----------------------------------------------------------------------------------------

def test_fp8_linear_forward_and_backward_match_explicit_fp8_gemms():
    g = torch.Generator().manual_seed(6)
    lin = nn.Linear(256, 384)
    layer = FP8Linear.from_linear(lin)
    assert layer.weight is lin.weight and layer.bias is lin.bias
    x = torch.randn(3, 100, 256, generator=g, requires_grad=True)  # 300 tokens: not a multiple of 128
    y = layer(x)
    dy = torch.randn(y.shape, generator=g)
    gx, gw, gb = torch.autograd.grad(y, (x, layer.weight, layer.bias), dy)
    x2, dy2, w = x.detach().reshape(300, 256), dy.reshape(300, 384), lin.weight.detach()
    # The same FP8 values multiplied in FP32 in a different summation order: rtol 1e-5 (~80 ulp) and
    # atol 1e-5 × max|reference| for entries that cancel.
    close = lambda ours, ref: torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    close(y.detach().reshape(300, 384), fp8_gemm(*quantize_tiles(x2), *quantize_blocks(w)) + lin.bias.detach())
    w_t = quantize_blocks(w.T.contiguous())
    close(gx.reshape(300, 256), fp8_gemm(*quantize_tiles(dy2), *w_t))
    pad = lambda t: torch.cat([t, t.new_zeros(84, t.shape[1])]).T.contiguous()  # tokens -> 384, tiles along tokens
    x_hat = fake_quantize(x2, (1, 128))
    dy_t, x_t = quantize_tiles(pad(dy2)), quantize_tiles(pad(x_hat))
    close(gw, fp8_gemm(*dy_t, *x_t))
    close(gb, dy2.sum(0))
    # and FP8 is close to FP32 (a sanity bound: ~2-5% relative error per GEMM for E4M3)
    assert relative_error(gx, torch.autograd.grad(lin(x), x, dy)[0]) < 0.08


def test_fp8_linear_with_a_fine_format_is_nn_linear():
    # The same machinery (scales, tiles along tokens, explicit backward) with 20 fraction bits instead of 3
    # must reproduce nn.Linear: quantization error ~2^-21, so rtol 1e-5 separates "plumbing right" from any
    # mistake in transposes, tile directions or scaling, which would give errors of order 1.
    fine = FloatFormat("E8M20", 8, 20, 127, 448.0, has_inf=True, saturates=False, dtype=torch.float32)
    g = torch.Generator().manual_seed(8)
    lin = nn.Linear(128, 256)
    layer = FP8Linear.from_linear(lin, fmt=fine)
    x = torch.randn(2, 70, 128, generator=g, requires_grad=True)
    dy = torch.randn(2, 70, 256, generator=g)
    ours = torch.autograd.grad(layer(x), (x, lin.weight, lin.bias), dy)
    ref = torch.autograd.grad(lin(x), (x, lin.weight, lin.bias), dy)
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5 * r.abs().max().item())


def test_fp8_linear_keeps_the_callers_dtype():
    layer = FP8Linear(128, 128, bias=True).to(torch.bfloat16)
    x = torch.randn(4, 128, dtype=torch.bfloat16, requires_grad=True)
    y = layer(x)
    y.float().sum().backward()
    assert y.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16 and layer.weight.grad.dtype == torch.bfloat16


def test_convert_to_fp8_swaps_and_shares_weights():
    torch.manual_seed(7)
    model = nn.ModuleDict({"body": nn.Sequential(nn.Linear(128, 256, bias=False), nn.ReLU(), nn.Linear(256, 128)),
                           "lm_head": nn.Linear(128, 50)})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert convert_to_fp8(model) == ["body.0", "body.2"]
    assert isinstance(model["body"][0], FP8Linear) and type(model["lm_head"]) is nn.Linear
    assert model.state_dict().keys() == before.keys()
    x = torch.randn(10, 128)
    ref = nn.Sequential(nn.Linear(128, 256, bias=False), nn.ReLU(), nn.Linear(256, 128))
    ref.load_state_dict({k[5:]: v for k, v in before.items() if k.startswith("body.")})
    assert relative_error(model["body"](x), ref(x)) < 0.08


# ---- bad input ------------------------------------------------------------------------------------------

def test_bad_input_errors():
    with pytest.raises(ValueError, match="not a multiple of the block size 128"):
        quantize_tiles(torch.randn(4, 100))
    with pytest.raises(ValueError, match="not a multiple of the block rows 128"):
        quantize_blocks(torch.randn(100, 128))
    with pytest.raises(ValueError, match="2-D weight matrix"):
        quantize_blocks(torch.randn(128))
    with pytest.raises(TypeError, match="floating-point tensor"):
        quantize(torch.ones(4, 128, dtype=torch.int32))
    with pytest.raises(ValueError, match="block_shape must be"):
        quantize(torch.randn(4, 128), (0, 128))
    with pytest.raises(TypeError, match="FloatFormat"):
        quantize(torch.randn(4, 128), None, "e4m3")
    with pytest.raises(ValueError, match="FP8-range format"):
        quantize(torch.randn(4, 128), None, BF16)
    with pytest.raises(TypeError, match="float32 or float64"):
        round_to_format(torch.ones(3, dtype=torch.int64), E4M3)
    with pytest.raises(ValueError, match="rounding must be"):
        round_to_bits(torch.ones(3), 3, rounding="up")
    with pytest.raises(ValueError, match="bits must be in"):
        decode(256, E4M3)
    q, s = quantize_tiles(torch.randn(4, 256))
    with pytest.raises(TypeError, match="q must be a float8 tensor"):
        dequantize(q.float(), s, (1, 128))
    with pytest.raises(ValueError, match="scale has shape"):
        dequantize(q, s[:, :1], (1, 128))
    with pytest.raises(TypeError, match="a must be a float8 tensor"):
        fp8_gemm(q.float(), s, q, s)
    qw, sw = quantize_blocks(torch.randn(128, 256))
    with pytest.raises(ValueError, match="must be promoted"):
        fp8_gemm(q, s, qw, sw, promote_every=None)
    with pytest.raises(ValueError, match="does not tile"):
        fp8_gemm(q, s[:, :1].repeat(1, 3), qw, sw)
    with pytest.raises(ValueError, match="share K"):
        fp8_gemm(q, s, qw[:, :128], sw[:, :1])
    with pytest.raises(ValueError, match="in_features=100 is not a multiple"):
        FP8Linear(100, 128)
    with pytest.raises(ValueError, match="disagree"):
        fp8_linear(torch.randn(2, 128), torch.randn(128, 256))
    with pytest.raises(ValueError, match="sizes must be multiples of block=128"):
        convert_to_fp8(nn.Sequential(nn.Linear(128, 100)))
    with pytest.raises(TypeError, match="nn.Linear"):
        FP8Linear.from_linear(nn.ReLU())
