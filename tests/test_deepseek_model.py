"""Our DeepSeek-V3-style model vs a randomly initialised HF ``DeepseekV3ForCausalLM`` (copied weights).

Tolerance: fp32 with atol = rtol = 1e-5. Both sides do the same float32 operations in a slightly
different order (fused vs per-expert matmuls, de-interleaved RoPE computed two ways), which moves
logits of size ~1 by ~1e-7; 1e-5 leaves room for that and still fails on any real mistake
(a wrong scale, a swapped half, a missed bias or group mask changes logits by >1e-3).
"""

import pytest
import torch
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

from course_lib.models.deepseek import DeepSeekConfig, DeepSeekForCausalLM, state_dict_from_hf

TOL = dict(atol=1e-5, rtol=1e-5)
YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16,
        "mscale": 1.0, "mscale_all_dim": 1.0, "beta_fast": 32, "beta_slow": 1}
DEFAULT = {"rope_type": "default", "rope_theta": 10000.0}


pytestmark = pytest.mark.usefixtures("one_thread")


def hf_config(q_lora_rank, rope, rms_norm_eps=1e-6):
    return DeepseekV3Config(rms_norm_eps=rms_norm_eps,
        vocab_size=97, hidden_size=48, intermediate_size=96, moe_intermediate_size=16, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, n_shared_experts=2, n_routed_experts=8,
        routed_scaling_factor=2.5, kv_lora_rank=16, q_lora_rank=q_lora_rank, qk_rope_head_dim=8, v_head_dim=12,
        qk_nope_head_dim=10, n_group=4, topk_group=2, num_experts_per_tok=3, first_k_dense_replace=2,
        max_position_embeddings=64, rope_parameters=dict(rope), attn_implementation="eager")


def make_pair(q_lora_rank, rope, seed=0, rms_norm_eps=1e-6):
    torch.manual_seed(seed)
    hf = DeepseekV3ForCausalLM(hf_config(q_lora_rank, rope, rms_norm_eps)).eval()
    with torch.no_grad():  # HF initialises the routing bias to zeros: randomise it so biased selection is tested
        for name, buf in hf.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.copy_(torch.randn_like(buf) * 0.5)
    ours = DeepSeekForCausalLM.from_hf(hf.config, hf.state_dict())
    return hf, ours


@pytest.mark.parametrize("q_lora_rank", [None, 24])
@pytest.mark.parametrize("rope", [DEFAULT, YARN], ids=["rope", "yarn"])
def test_logits_and_attentions_match_hf(q_lora_rank, rope):
    hf, ours = make_pair(q_lora_rank, rope)
    ids = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(ids, output_attentions=True)
        out = ours(ids, output_attentions=True)
        absorbed = ours(ids, mode="absorbed", output_attentions=True)
    torch.testing.assert_close(out.logits, ref.logits, **TOL)
    torch.testing.assert_close(absorbed.logits, ref.logits, **TOL)
    assert len(out.attentions) == len(ref.attentions) == 4
    for a, b, c in zip(out.attentions, absorbed.attentions, ref.attentions):
        torch.testing.assert_close(a, c, **TOL)
        torch.testing.assert_close(b, c, **TOL)


def test_latent_norms_keep_eps_1e_6_at_another_rms_norm_eps():
    """HF and DeepSeek's inference code build q_a/kv_a_layernorm with a fixed ε = 1e-6, not config.rms_norm_eps.

    At ε = 0.5 the block norms change a lot; using 0.5 in the latent norms too moves the logits by ~1e-2
    (measured below), far outside the 1e-5 tolerance, so this comparison fails if the latent ε follows the config.
    """
    hf, ours = make_pair(24, DEFAULT, rms_norm_eps=0.5)
    assert ours.config.rms_norm_eps == 0.5
    attn = ours.model.layers[0].self_attn
    assert attn.q_a_layernorm.eps == attn.kv_a_layernorm.eps == 1e-6
    ids = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(ids).logits
        torch.testing.assert_close(ours(ids).logits, ref, **TOL)
        torch.testing.assert_close(ours(ids, mode="absorbed").logits, ref, **TOL)
        for layer in ours.model.layers:  # the old behaviour: latent ε = config.rms_norm_eps
            layer.self_attn.q_a_layernorm.eps = layer.self_attn.kv_a_layernorm.eps = 0.5
        assert (ours(ids).logits - ref).abs().max() > 1e-3


def test_the_config_exercises_every_feature():
    """Guard against a comparison that cannot fail: bias, groups, YaRN and the dense/MoE split all matter."""
    hf, ours = make_pair(None, YARN)
    ids = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(1))
    types = [type(layer.mlp).__name__ for layer in ours.model.layers]
    assert types == ["SwiGLU", "SwiGLU", "DeepSeekMoE", "DeepSeekMoE"]
    with torch.no_grad():
        base = ours(ids).logits
        moe = ours.moe_layers()[0]
        picked_with_bias = moe.last_routing.indices.sort(-1).values
        moe.gate.e_score_correction_bias.zero_()
        assert not torch.allclose(ours(ids).logits, base, atol=1e-4)
        assert (moe.last_routing.indices.sort(-1).values != picked_with_bias).any()
    _, plain = make_pair(None, DEFAULT)
    with torch.no_grad():
        assert not torch.allclose(plain(ids).logits, base, atol=1e-4)


@pytest.mark.parametrize("mode", ["naive", "absorbed"])
def test_kv_cache_decoding_matches_full_forward(mode):
    _, ours = make_pair(24, DEFAULT)
    ids = torch.randint(0, 97, (1, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = ours(ids).logits
        cache = ours.new_cache(1, 12)
        steps = [ours(ids[:, :5], cache, mode).logits]
        steps += [ours(ids[:, t : t + 1], cache, mode).logits for t in range(5, 12)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, **TOL)


def test_mtp_loss_and_bias_update_run():
    cfg = DeepSeekConfig(num_nextn_predict_layers=2, aux_loss_alpha=1e-2, n_routed_experts=4, n_group=2,
                         topk_group=1, num_experts_per_tok=2)
    model = DeepSeekForCausalLM(cfg)
    tokens = torch.randint(0, 256, (2, 16))
    loss, parts = model.loss(tokens)
    assert set(parts) == {"main", "mtp1", "mtp2", "balance"}
    loss.backward()
    assert model.mtp[1].eh_proj.weight.grad is not None
    assert model.moe_layers()[0].gate.weight.grad is not None
    before = model.moe_layers()[0].gate.e_score_correction_bias.clone()
    model.update_bias()
    assert not torch.equal(before, model.moe_layers()[0].gate.e_score_correction_bias)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="kv_lora_rank must be a positive int"):
        DeepSeekConfig(kv_lora_rank=0)
    with pytest.raises(ValueError, match="topk_group=3 must be <= n_group=2"):
        DeepSeekConfig(n_group=2, topk_group=3)
    with pytest.raises(ValueError, match="num_experts_per_tok \\(top-k\\)=9 must be <= n_routed_experts=8"):
        DeepSeekConfig(num_experts_per_tok=9)
    with pytest.raises(ValueError, match="first_k_dense_replace must be in"):
        DeepSeekConfig(first_k_dense_replace=5)
    with pytest.raises(TypeError, match="config must be a DeepSeekConfig"):
        DeepSeekForCausalLM({"hidden_size": 64})
    model = DeepSeekForCausalLM(DeepSeekConfig())
    with pytest.raises(TypeError, match="input_ids must be an integer tensor"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="cache must be a DeepSeekCache from new_cache"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=[])
    with pytest.raises(ValueError, match="cache for batch 1 × 4 positions cannot take 1 × 5"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=model.new_cache(1, 4))
    with pytest.raises(ValueError, match="tokens must be \\(B, L\\)"):
        model.loss(torch.zeros(1, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="rope_interleave=True"):
        DeepSeekConfig.from_hf(DeepseekV3Config(rope_interleave=False, num_key_value_heads=128))
    with pytest.raises(ValueError, match="gate_up_proj has shape"):
        state_dict_from_hf({"model.layers.1.mlp.experts.gate_up_proj": torch.zeros(3, 4, 5)}, DeepSeekConfig())
