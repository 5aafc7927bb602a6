"""DeepSeekMoE vs HF ``DeepseekV3TopkRouter`` / ``DeepseekV3MoE`` (copied weights), balancing laws and metrics.

Tolerance fp32 atol = rtol = 1e-5: HF runs the experts as fused (E, 2I, d) matmuls, we run
one SwiGLU per expert; the sums are the same up to float32 rounding (~1e-7). The selected
experts must match exactly (compared as sets, since top-k order is not specified).
"""

import pytest
import torch
from transformers import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE

from course_lib.models.deepseek import (
    DeepSeekConfig,
    DeepSeekForCausalLM,
    DeepSeekMoE,
    MoEConfig,
    max_violation,
    sequence_balance_loss,
)
from course_lib.models.deepseek.model import state_dict_from_hf

TOL = dict(atol=1e-5, rtol=1e-5)


pytestmark = pytest.mark.usefixtures("one_thread")


def make_pair(n_group, topk_group, top_k, seed=0):
    torch.manual_seed(seed)
    hf_cfg = DeepseekV3Config(hidden_size=24, moe_intermediate_size=8, n_routed_experts=12, n_shared_experts=2,
                              num_experts_per_tok=top_k, n_group=n_group, topk_group=topk_group,
                              routed_scaling_factor=2.5, num_key_value_heads=128)
    hf = DeepseekV3MoE(hf_cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.3)
        hf.gate.e_score_correction_bias.normal_(0, 0.3)  # HF initialises it to zeros
    ours = DeepSeekMoE(MoEConfig(24, 8, 12, top_k, 2, n_group, topk_group, 2.5)).eval()
    cfg = DeepSeekConfig(hidden_size=24, moe_intermediate_size=8, n_routed_experts=12, num_experts_per_tok=top_k,
                         n_group=n_group, topk_group=topk_group)
    mapped = state_dict_from_hf({f"mlp.{k}": v for k, v in hf.state_dict().items()}, cfg)
    ours.load_state_dict({k.removeprefix("mlp."): v for k, v in mapped.items()})
    return hf, ours


@pytest.mark.parametrize("n_group,topk_group,top_k", [(1, 1, 2), (4, 2, 3), (3, 1, 4), (6, 3, 5)])
def test_router_and_moe_match_hf(n_group, topk_group, top_k):
    hf, ours = make_pair(n_group, topk_group, top_k)
    x = torch.randn(2, 16, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, ref_weights, ref_idx = hf.gate(x)
        routing = ours.gate(x.view(-1, 24))
        ref_order, our_order = ref_idx.argsort(-1), routing.indices.argsort(-1)
        torch.testing.assert_close(routing.indices.gather(1, our_order), ref_idx.gather(1, ref_order), atol=0, rtol=0)
        torch.testing.assert_close(routing.weights.gather(1, our_order), ref_weights.gather(1, ref_order), **TOL)
        torch.testing.assert_close(ours(x), hf(x), **TOL)
    if n_group > 1:  # the group limit really excluded experts that the plain top-k would have picked
        plain = (routing.scores + ours.gate.e_score_correction_bias).topk(top_k, dim=-1).indices
        assert (plain.sort(-1).values != routing.indices.sort(-1).values).any()


def test_gate_uses_unbiased_scores_and_scaling():
    moe = DeepSeekMoE(MoEConfig(8, 4, 4, 2, routed_scaling_factor=2.5))
    with torch.no_grad():
        moe.gate.e_score_correction_bias.copy_(torch.tensor([10.0, 10.0, 0.0, 0.0]))  # forces experts 0 and 1
        routing = moe.gate(torch.randn(5, 8))
    assert (routing.indices.sort(-1).values == torch.tensor([0, 1])).all()
    s = routing.scores[:, :2]
    torch.testing.assert_close(routing.weights.sort(-1).values, (2.5 * s / s.sum(-1, keepdim=True)).sort(-1).values)


def test_update_bias_is_a_sign_step():
    moe = DeepSeekMoE(MoEConfig(8, 4, 4, 1, bias_update_speed=0.1))
    moe.update_bias(torch.tensor([6, 2, 2, 2]))
    torch.testing.assert_close(moe.gate.e_score_correction_bias, torch.tensor([-0.1, 0.1, 0.1, 0.1]))
    moe.update_bias(torch.tensor([3, 3, 3, 3]))  # balanced: no change
    torch.testing.assert_close(moe.gate.e_score_correction_bias, torch.tensor([-0.1, 0.1, 0.1, 0.1]))


def test_sequence_balance_loss():
    # perfectly balanced: every expert chosen equally often, uniform scores -> alpha exactly
    scores = torch.full((1, 4, 4), 0.5)
    indices = torch.tensor([[[0, 1], [2, 3], [0, 1], [2, 3]]])
    assert sequence_balance_loss(scores, indices, 0.1).item() == pytest.approx(0.1)
    # collapsed onto experts 0, 1 with most of the score there: f = (2, 2, 0, 0), P = (0.4, 0.4, 0.1, 0.1)
    scores = torch.tensor([0.8, 0.8, 0.2, 0.2]).expand(1, 4, 4)
    indices = torch.tensor([[[0, 1]] * 4])
    assert sequence_balance_loss(scores, indices, 0.1).item() == pytest.approx(0.1 * (2 * 0.4 + 2 * 0.4))


def test_max_violation():
    assert max_violation(torch.tensor([2, 2, 2, 2])) == 0.0
    assert max_violation(torch.tensor([8, 0, 0, 0])) == pytest.approx(3.0)


def test_aux_loss_free_balancing_beats_no_balancing():
    """Fixed seed, byte-level LM on random bytes of the Python docs; MaxVio averaged over the last 10 steps."""
    from course_lib.data import python_docs_text

    data = torch.tensor(list(python_docs_text(50_000).encode()), dtype=torch.long)

    def run(gamma):
        torch.manual_seed(0)
        cfg = DeepSeekConfig(hidden_size=48, num_hidden_layers=2, n_routed_experts=16, num_experts_per_tok=2,
                             moe_intermediate_size=16, bias_update_speed=gamma)
        model = DeepSeekForCausalLM(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        g, vio = torch.Generator().manual_seed(1), []
        for _ in range(40):
            starts = torch.randint(0, len(data) - 33, (8,), generator=g)
            loss, _ = model.loss(torch.stack([data[s : s + 33] for s in starts]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            vio.append(max_violation(model.moe_layers()[0].expert_load()))
            model.update_bias()  # gamma = 0: no-op, the unbalanced baseline
        return sum(vio[-10:]) / 10

    unbalanced, balanced = run(0.0), run(0.01)
    assert balanced < 0.5 * unbalanced, (balanced, unbalanced)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="topk_group=3 must be <= n_group=2"):
        MoEConfig(8, 4, 8, 2, n_group=2, topk_group=3)
    with pytest.raises(ValueError, match="num_experts_per_tok \\(top-k\\)=9 must be <= n_routed_experts=8"):
        MoEConfig(8, 4, 8, 9)
    with pytest.raises(ValueError, match="must be divisible by n_group=3"):
        MoEConfig(8, 4, 8, 2, n_group=3, topk_group=1)
    with pytest.raises(ValueError, match="exceeds the experts reachable"):
        MoEConfig(8, 4, 8, 4, n_group=4, topk_group=1)
    with pytest.raises(ValueError, match="n_routed_experts must be a positive int"):
        MoEConfig(8, 4, 0, 1)
    with pytest.raises(ValueError, match="top-2 experts of a group"):
        MoEConfig(8, 4, 4, 1, n_group=4, topk_group=2)
    with pytest.raises(TypeError, match="config must be a MoEConfig"):
        DeepSeekMoE({})
    moe = DeepSeekMoE(MoEConfig(8, 4, 4, 2))
    with pytest.raises(ValueError, match="expert_load needs a forward pass first"):
        moe.expert_load()
    with pytest.raises(ValueError, match="x must have shape \\(B, T, 8\\)"):
        moe(torch.randn(4, 8))
    with pytest.raises(ValueError, match="load must have shape \\(4,\\)"):
        moe.update_bias(torch.ones(3))
    with pytest.raises(ValueError, match="scores must be \\(B, T, E\\)"):
        sequence_balance_loss(torch.rand(4, 4), torch.zeros(4, 2, dtype=torch.long), 0.1)
    with pytest.raises(ValueError, match="load is all zeros"):
        max_violation(torch.zeros(4))
