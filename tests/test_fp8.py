"""FP8 formats and block quantization (course_lib.quant.fp8), against torch; GEMM and FP8Linear tests live in
test_fp8_gemm.py.

References: torch's float8 / bfloat16 casts and bit views (exact, compared bit for bit),
``torch._scaled_mm`` (TensorWise and RowWise scaling run on the CPU in torch 2.13; block scaling does
not, so block-scaled results are compared with explicit dequantize-then-matmul in float64), and a
scalar pure-Python model of the limited-precision accumulator.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.quant.fp8 import (
    BF16,
    E4M3,
    E5M2,
    decode,
    dequantize,
    fake_quantize,
    quantize,
    quantize_blocks,
    quantize_per_tensor,
    quantize_tiles,
    representable_values,
    round_to_bits,
    round_to_format,
)

FORMATS = [E4M3, E5M2, BF16]
BIT_DTYPE = {8: torch.uint8, 16: torch.int16}


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal as float32 bit patterns (so -0.0 != 0.0), NaN equal to NaN."""
    a, b = a.float(), b.float()
    return bool(((a.view(torch.int32) == b.view(torch.int32)) | (a.isnan() & b.isnan())).all())


# ---- formats ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_decode_matches_torch_bit_view(fmt):
    patterns = torch.arange(2**fmt.bits, dtype=torch.int32).to(BIT_DTYPE[fmt.bits])
    theirs = patterns.view(fmt.dtype).double()
    ours = torch.tensor([decode(b, fmt) for b in range(2**fmt.bits)], dtype=torch.float64)
    assert bool(((theirs == ours) | (theirs.isnan() & ours.isnan())).all())


@pytest.mark.parametrize("fmt, count, max_value, min_sub", [(E4M3, 127, 448.0, 2**-9), (E5M2, 124, 57344.0, 2**-16)],
                         ids=["E4M3", "E5M2"])
def test_representable_values(fmt, count, max_value, min_sub):
    values = representable_values(fmt)
    assert len(values) == count  # non-negative finite values (0 included)
    assert values[-1].item() == max_value == fmt.max_value == torch.finfo(fmt.dtype).max
    assert values[1].item() == min_sub == fmt.min_subnormal
    assert fmt.min_normal == torch.finfo(fmt.dtype).tiny
    assert fmt.epsilon == torch.finfo(fmt.dtype).eps


def _wide_random(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * torch.exp2(torch.randint(-40, 40, (n,), generator=g).float())
    special = [0.0, -0.0, math.inf, -math.inf, math.nan, 448.0, 464.0, 470.0, 480.0, 57344.0, 61439.0, 61440.0,
               1.0625, 1.1875, 2.0**-10, 3 * 2.0**-11, 1e-45, -1e-45, 3.4e38]
    return torch.cat([x, torch.tensor(special)])


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_round_to_format_is_torch_cast_bit_for_bit(fmt):
    # Exact (bit-level) comparison: rounding is a discrete function, any tolerance would hide a bug.
    x = _wide_random(100_000, seed=1)
    assert same_bits(round_to_format(x, fmt), x.to(fmt.dtype))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1, max_size=64))
def test_round_to_format_property(values):
    x = torch.tensor(values, dtype=torch.float32)
    for fmt in FORMATS:
        assert same_bits(round_to_format(x, fmt), x.to(fmt.dtype))


def test_round_ties_to_even_and_saturation():
    x = torch.tensor([1.0625, 1.1875, 464.0, 1e6, -math.inf, 61440.0])
    e4m3 = round_to_format(x, E4M3)
    assert e4m3[:5].tolist() == [1.0, 1.25, 448.0, 448.0, -448.0]  # ties to even; fn saturates
    assert round_to_format(x, E5M2)[5].item() == math.inf  # E5M2 overflows to inf


def test_round_to_bits_truncate_and_nearest():
    x = torch.tensor([1.0 + 2**-13 + 2**-14, -(1.0 + 2**-13 + 2**-14)], dtype=torch.float64)
    assert round_to_bits(x, 13, rounding="truncate").tolist() == [1.0 + 2**-13, -(1.0 + 2**-13)]
    assert round_to_bits(x, 13, rounding="nearest").tolist() == [1.0 + 2**-12, -(1.0 + 2**-12)]


# ---- scaling --------------------------------------------------------------------------------------

def _reference_fake_quant(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Independent reference: explicit loops over blocks, torch's own E4M3 cast, scale = amax / 448."""
    out = torch.empty_like(x)
    for i in range(0, x.shape[0], rows):
        for j in range(0, x.shape[1], cols):
            block = x[i:i + rows, j:j + cols]
            scale = block.abs().max().clamp_min(1e-12) / 448.0
            out[i:i + rows, j:j + cols] = (block / scale).to(torch.float8_e4m3fn).float() * scale
    return out


@pytest.mark.parametrize("block_shape", [None, (1, 128), (128, 128), (2, 64)])
def test_fake_quantize_matches_blockwise_reference(block_shape):
    x = torch.randn(256, 384, generator=torch.Generator().manual_seed(2)) * 3
    rows, cols = block_shape or x.shape
    # Same scale and the same (proven bit-exact) cast: equal exactly.
    torch.testing.assert_close(fake_quantize(x, block_shape), _reference_fake_quant(x, rows, cols), rtol=0, atol=0)


@settings(max_examples=40, deadline=None)
@given(rows=st.sampled_from([1, 2, 4]), cols=st.sampled_from([8, 16, 32]), n_r=st.integers(1, 4),
       n_c=st.integers(1, 3), log_scale=st.floats(-30, 30), seed=st.integers(0, 2**16))
def test_fake_quantize_property(rows, cols, n_r, n_c, log_scale, seed):
    # any block shape, any magnitude (scaling makes the result independent of 2^log_scale up to rounding)
    x = torch.randn(rows * n_r, cols * n_c, generator=torch.Generator().manual_seed(seed)) * 2.0**log_scale
    torch.testing.assert_close(fake_quantize(x, (rows, cols)), _reference_fake_quant(x, rows, cols), rtol=0, atol=0)


def test_quantize_shapes_scales_and_range():
    x = torch.randn(3, 256, 512)
    q, s = quantize_tiles(x)
    assert q.dtype == torch.float8_e4m3fn and s.shape == (3, 256, 4)
    assert (q.float().abs().view(3, 256, 4, 128).amax(-1) == 448).all()  # every tile's amax lands on 448
    torch.testing.assert_close(s, x.view(3, 256, 4, 128).abs().amax(-1) / 448)
    q, s = quantize_blocks(x[0])
    assert s.shape == (2, 4)
    q, s = quantize_per_tensor(x)
    assert s.shape == () and q.shape == x.shape
    q, s = quantize(torch.zeros(2, 128), (1, 128))  # all-zero blocks: q = 0, not NaN
    assert (q.float() == 0).all() and torch.isfinite(s).all()
    q, s = quantize(x[0, 0], (1, 128), E5M2)
    assert q.dtype == torch.float8_e5m2 and s.shape == (4,)
    torch.testing.assert_close(dequantize(q, s, (1, 128)), x[0, 0], rtol=2**-3, atol=0)


def test_weight_blocks_are_transpose_invariant():
    # Why weights use 128×128 blocks: the same FP8 weight serves W (Fprop) and Wᵀ (Dgrad).
    w = torch.randn(256, 384)
    torch.testing.assert_close(fake_quantize(w, (128, 128)).T, fake_quantize(w.T.contiguous(), (128, 128)),
                               rtol=0, atol=0)
