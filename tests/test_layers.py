"""course_lib.layers vs the HF LLaMA / DeepSeek-V3 reference implementations."""

import pytest
import torch
from transformers import LlamaConfig
from transformers.models.llama import modeling_llama as hf_llama

from course_lib.layers import RMSNorm, SwiGLU, apply_rope, rope_cos_sin, rope_inv_freq


def test_rmsnorm_equals_hf():
    ours, ref = RMSNorm(16, eps=1e-5), hf_llama.LlamaRMSNorm(16, eps=1e-5)
    with torch.no_grad():
        ours.weight.normal_()
        ref.weight.copy_(ours.weight)
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-6)  # same fp32 ops in the same order


def test_rope_equals_hf_llama():
    cfg = LlamaConfig(hidden_size=32, num_attention_heads=2, head_dim=16, rope_parameters={"rope_type": "default", "rope_theta": 1e4})
    rotary = hf_llama.LlamaRotaryEmbedding(cfg)
    q, k = torch.randn(1, 2, 7, 16), torch.randn(1, 2, 7, 16)
    pos = torch.arange(7)
    cos_ref, sin_ref = rotary(q, pos[None])
    q_ref, k_ref = hf_llama.apply_rotary_pos_emb(q, k, cos_ref, sin_ref)
    cos, sin = rope_cos_sin(pos, rope_inv_freq(16, 1e4))
    torch.testing.assert_close(apply_rope(q, cos, sin), q_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(apply_rope(k, cos, sin), k_ref, rtol=1e-5, atol=1e-6)


def test_interleaved_rope_equals_hf_deepseek_v3():
    from transformers.models.deepseek_v3 import modeling_deepseek_v3 as hf_ds

    q, k = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    cos, sin = rope_cos_sin(torch.arange(5), rope_inv_freq(8, 1e4))
    q_ref, k_ref = hf_ds.apply_rotary_pos_emb_interleave(q, k, cos[None], sin[None])
    torch.testing.assert_close(apply_rope(q, cos, sin, interleaved=True), q_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(apply_rope(k, cos, sin, interleaved=True), k_ref, rtol=1e-5, atol=1e-6)


def test_rope_preserves_norm_and_relative_position():
    """Rotation keeps lengths, and q_m·k_n depends only on m - n (RoFormer §3.4.2)."""
    inv = rope_inv_freq(8)
    q, k = torch.randn(8), torch.randn(8)
    def rot(x, m):
        cos, sin = rope_cos_sin(torch.tensor([m]), inv)
        return apply_rope(x.view(1, 1, 1, 8), cos, sin).view(8)
    torch.testing.assert_close(rot(q, 5).norm(), q.norm())
    torch.testing.assert_close(rot(q, 7) @ rot(k, 3), rot(q, 104) @ rot(k, 100), rtol=1e-4, atol=1e-4)


def test_swiglu_equals_hf_mlp():
    cfg = LlamaConfig(hidden_size=12, intermediate_size=20, num_attention_heads=2, hidden_act="silu")
    ref, ours = hf_llama.LlamaMLP(cfg), SwiGLU(12, 20)
    ours.load_state_dict(ref.state_dict())  # same parameter names: gate_proj, up_proj, down_proj
    x = torch.randn(3, 12)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="even head_dim"):
        rope_inv_freq(7)
    with pytest.raises(ValueError, match="last dimension 4"):
        RMSNorm(4)(torch.randn(2, 5))
    cos, sin = rope_cos_sin(torch.arange(3), rope_inv_freq(4))
    with pytest.raises(ValueError, match="disagree"):
        apply_rope(torch.randn(1, 1, 5, 4), cos, sin)
