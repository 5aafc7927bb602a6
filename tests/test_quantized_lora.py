"""QLoRA-style LoRA on a base kept in SmolLM2's own Q4_1 blocks: dequantization equals gguf's, outputs equal fp32."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
from torch.testing import assert_close

from course_lib import weights
from course_lib.peft import lora
from course_lib.peft.lora import inject_lora
from course_lib.peft.quantized import Q4_1Linear, module_bytes, quantize_base, smollm2_q4_1_blocks


@pytest.fixture(scope="module")
def blocks():
    return smollm2_q4_1_blocks()


def test_dequantize_equals_gguf_reference():
    """Our nibble arithmetic vs gguf-py's ``dequantize`` on real tensors: bit-identical."""
    tensors = [t for t in gguf.GGUFReader(str(weights.smollm2_gguf_path())).tensors
               if t.tensor_type == gguf.GGMLQuantizationType.Q4_1][:6]
    for t in tensors:
        ours = Q4_1Linear.from_blocks(np.array(t.data)).dequantized_weight()
        ref = torch.from_numpy(np.array(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32))
        assert torch.equal(ours, ref), t.name


def test_every_q4_1_layer_equals_our_fp32_weights(blocks, smollm2_state_dict):
    assert len(blocks) == 210  # 30 layers × (q, k, v, o, gate, up, down)
    for name, raw in blocks.items():  # q/k rows un-permuted like the fp32 loader
        assert torch.equal(Q4_1Linear.from_blocks(raw).dequantized_weight(), smollm2_state_dict[f"{name}.weight"]), name


def test_forward_and_backward_equal_fp32_linear(blocks, smollm2_state_dict):
    name = "model.layers.3.mlp.down_proj"
    q = Q4_1Linear.from_blocks(blocks[name])
    dense = torch.nn.Linear(q.in_features, q.out_features, bias=False)
    dense.weight.data.copy_(smollm2_state_dict[f"{name}.weight"])
    x = torch.randn(2, 5, q.in_features, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y, y2 = q(x), dense(x2)
    assert torch.equal(y, y2)
    y.square().sum().backward()
    y2.square().sum().backward()
    assert_close(x.grad, x2.grad, atol=1e-5, rtol=1e-5)  # same W, grad_out @ W in both
    assert not any(p.requires_grad for p in q.parameters())
    assert q.qs.dtype == torch.uint8 and module_bytes(q) * 6.4 == pytest.approx(module_bytes(dense))


def test_lora_on_quantized_smollm2_equals_fp32_base(blocks, smollm2):
    import copy

    fp32 = copy.deepcopy(smollm2)
    quant = copy.deepcopy(smollm2)
    assert len(quantize_base(quant, blocks)) == 210
    assert module_bytes(quant) < 0.35 * module_bytes(fp32)  # 210 linears at 5 bits; the embedding stays fp32
    torch.manual_seed(0)
    inject_lora(fp32, r=4, alpha=8)
    torch.manual_seed(0)
    inject_lora(quant, r=4, alpha=8)
    for a, b in zip(lora.lora_layers(fp32).values(), lora.lora_layers(quant).values(), strict=True):
        torch.nn.init.normal_(a.lora_B.weight, std=0.02)
        b.lora_B.weight.data.copy_(a.lora_B.weight)
        assert torch.equal(a.lora_A.weight, b.lora_A.weight)
    ids = torch.randint(0, 49152, (1, 9))
    assert_close(quant(ids).logits, fp32(ids).logits, atol=1e-4, rtol=1e-4)  # same weights, same kernels order
    with pytest.raises(TypeError, match="cannot merge into a Q4_1Linear"):
        lora.merge(quant)


def test_bad_blocks():
    with pytest.raises(ValueError, match="raw Q4_1 data must be uint8"):
        Q4_1Linear.from_blocks(np.zeros((4, 21), dtype=np.uint8))
    with pytest.raises(TypeError, match="qs must be uint8"):
        Q4_1Linear(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, 1, 16))
