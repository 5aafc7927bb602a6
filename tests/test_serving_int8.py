"""Weight-only int8 linears: the per-channel quantization bound, both compute paths, the swap into a model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.generation import generate
from course_lib.models.llama import LlamaConfig, LlamaForCausalLM
from course_lib.serving.int8 import Int8Linear, quantize_int8, quantize_per_channel, weight_bytes


def test_per_channel_codes_and_error_bound():
    w = torch.randn(48, 96) * torch.logspace(-2, 1, 48)[:, None]  # rows of very different ranges
    codes, scale = quantize_per_channel(w)
    assert codes.dtype == torch.int8 and scale.shape == (48,)
    assert (codes.abs().amax(dim=1) == 127).all()  # each row's absmax maps to ±127
    torch.testing.assert_close(scale, w.abs().amax(dim=1) / 127)
    error = (w - codes.float() * scale[:, None]).abs()
    assert (error <= scale[:, None] / 2 + 1e-7).all()


def test_int8_linear_paths_equal_the_dequantized_weight():
    linear = nn.Linear(64, 32, bias=True)
    x = torch.randn(3, 5, 64)
    exact = Int8Linear.from_linear(linear, kernel=False)
    want = x @ exact.dequantized_weight().T + linear.bias  # (3, 5, 32)
    torch.testing.assert_close(exact(x), want, rtol=1e-5, atol=1e-5)
    kernel = Int8Linear.from_linear(linear, kernel=True)  # bf16 activations: bf16 tolerance
    torch.testing.assert_close(kernel(x), want, rtol=2e-2, atol=2e-2)
    assert (kernel(x) - want).abs().max() > 0  # it is not the fp32 path in disguise
    assert (exact(x) - linear(x)).abs().max() < 0.05 * linear(x).abs().max()


def test_quantize_int8_swaps_linears_and_keeps_greedy_tokens():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64)
    model = LlamaForCausalLM(config).eval()
    for p in model.parameters():
        p.data.mul_(4.0)
    ids = torch.tensor([[5, 17, 3, 9, 44]])
    want = generate(model, ids, 8)
    before = weight_bytes(model)
    names = quantize_int8(model, kernel=False)
    assert len(names) == 2 * 7 and all(isinstance(model.get_submodule(n), Int8Linear) for n in names)
    assert weight_bytes(model) < before
    assert (generate(model, ids, 8) == want).float().mean() >= 0.75


def test_bad_inputs():
    with pytest.raises(TypeError, match="floating-point tensor of shape"):
        quantize_per_channel(torch.ones(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        quantize_int8("model")
