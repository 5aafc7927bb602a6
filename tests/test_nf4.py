"""NF4 and double quantization (course_lib.peft.nf4) against bitsandbytes' CPU implementation and QLoRA's table."""

import logging

import pytest
import torch

from course_lib.peft import nf4

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # it warns that an optional CPU gemm kernel is missing
bnb_functional = pytest.importorskip("bitsandbytes.functional")  # pinned in requirements.txt

# QLoRA (Dettmers et al. 2023) Appendix E / bitsandbytes get_4bit_type("nf4"), hard-coded there.
PUBLISHED_NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                 -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                 0.7229568362236023, 1.0]


def test_codebook_matches_the_published_table_and_bitsandbytes():
    codebook = nf4.nf4_codebook()
    torch.testing.assert_close(codebook, torch.tensor(PUBLISHED_NF4), atol=1e-7, rtol=0)
    assert torch.equal(codebook, bnb_functional.get_4bit_type("nf4", device="cpu"))


@pytest.mark.parametrize("shape", [(192, 576), (1, 64), (3, 128)])
def test_quantize_matches_bitsandbytes_bit_for_bit(shape):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 0.05
    packed, absmax = nf4.quantize_nf4(w)
    ref_packed, state = bnb_functional.quantize_4bit(w, blocksize=64, quant_type="nf4")
    assert torch.equal(packed, ref_packed.reshape(-1)) and torch.equal(absmax, state.absmax)
    assert torch.equal(nf4.dequantize_nf4(packed, absmax, w.shape), bnb_functional.dequantize_4bit(ref_packed, state))


def test_double_quantization_is_as_accurate_as_bitsandbytes():
    w = torch.randn(1536, 576, generator=torch.Generator().manual_seed(1)) * 0.05
    packed, absmax = nf4.quantize_nf4(w)
    codes, scale, mean = nf4.double_quantize(absmax)
    assert codes.dtype == torch.int8 and scale.shape == (absmax.numel() // 256,)
    ours = nf4.double_dequantize(codes, scale, mean)
    _, state = bnb_functional.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
    theirs = bnb_functional.dequantize_blockwise(state.absmax, state.state2) + state.offset
    assert (ours - absmax).abs().max() <= (theirs - absmax).abs().max()
    assert (ours - absmax).abs().max() <= scale.max() / 2 + 1e-7        # round-to-nearest: half a step at most


def test_double_quantization_handles_a_short_last_block():
    absmax = torch.rand(300, generator=torch.Generator().manual_seed(2)) + 0.1
    codes, scale, mean = nf4.double_quantize(absmax)
    assert scale.shape == (2,) and codes.shape == (300,)
    assert (nf4.double_dequantize(codes, scale, mean) - absmax).abs().max() <= scale.max() / 2 + 1e-7
    with pytest.raises(ValueError, match="scales"):
        nf4.double_dequantize(codes, scale[:1], mean)


def test_bits_per_weight():
    assert nf4.bits_per_weight(64 * 256, double=False) == 4.5
    assert nf4.bits_per_weight(64 * 256, double=True) == 4 + 8 / 64 + 64 / (64 * 256)
    with pytest.raises(ValueError, match="numel"):
        nf4.bits_per_weight(100, double=True)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="numel"):
        nf4.quantize_nf4(torch.randn(65))
    with pytest.raises(TypeError, match="floating-point"):
        nf4.quantize_nf4(torch.arange(64))
    with pytest.raises(TypeError, match="uint8"):
        nf4.dequantize_nf4(torch.zeros(32, dtype=torch.int32), torch.ones(1), (64,))
    with pytest.raises(ValueError, match="offset"):
        nf4.nf4_codebook(offset=1.5)
