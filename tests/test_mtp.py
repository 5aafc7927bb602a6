"""MTP: the loss targets line up with DeepSeek-V3 §2.2, the concat order is [emb; h], and
self-speculative decoding returns exactly the greedy tokens.

Tolerance fp32 atol = rtol = 1e-5 where a value is recomputed by hand in a different order.
"""

import pytest
import torch
import torch.nn.functional as F

from course_lib.models.deepseek import (
    DeepSeekConfig,
    DeepSeekForCausalLM,
    MTPModule,
    greedy_generate,
    self_speculative_generate,
)

TOL = dict(atol=1e-5, rtol=1e-5)


pytestmark = pytest.mark.usefixtures("one_thread")


def model_with_mtp(depth=2, seed=0):
    torch.manual_seed(seed)
    return DeepSeekForCausalLM(DeepSeekConfig(vocab_size=50, num_nextn_predict_layers=depth, mtp_loss_weight=0.3)).eval()


def test_mtp_loss_targets_by_hand():
    model = model_with_mtp(depth=2)
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        total, parts = model.loss(tokens)
        h0 = model(tokens[:, :-1]).hidden_states  # (B, 11, d): positions 0..10
        emb = model.model.embed_tokens
        # depth 1: state at i with Emb(t_{i+1}) predicts t_{i+2}, i = 0..9
        h1 = model.mtp[0](h0[:, :10], emb(tokens[:, 1:11]))
        l1 = F.cross_entropy(model.lm_head(model.mtp[0].norm(h1)).flatten(0, 1), tokens[:, 2:12].flatten())
        # depth 2: depth-1 state at i with Emb(t_{i+2}) predicts t_{i+3}, i = 0..8
        h2 = model.mtp[1](h1[:, :9], emb(tokens[:, 2:11]))
        l2 = F.cross_entropy(model.lm_head(model.mtp[1].norm(h2)).flatten(0, 1), tokens[:, 3:12].flatten())
    assert parts["mtp1"] == pytest.approx(l1.item(), rel=1e-5)
    assert parts["mtp2"] == pytest.approx(l2.item(), rel=1e-5)
    torch.testing.assert_close(total, torch.tensor(parts["main"] + 0.3 * (l1.item() + l2.item()) / 2), **TOL)


def test_concat_order_is_emb_then_h():
    module = model_with_mtp(depth=1).mtp[0]
    d = module.enorm.weight.shape[0]
    with torch.no_grad():
        module.eh_proj.weight[:, d:] = 0  # drop the second half of the input: must be h
        h_a, h_b, emb = torch.randn(3, 1, 4, d).unbind(0)
        torch.testing.assert_close(module(h_a, emb), module(h_b, emb), **TOL)
        module.eh_proj.weight.normal_()
        module.eh_proj.weight[:, :d] = 0  # drop the first half: must be emb
        torch.testing.assert_close(module(h_a, emb), module(h_a, torch.randn(1, 4, d)), **TOL)


@pytest.mark.parametrize("seed", [0, 1])
def test_self_speculative_equals_greedy(seed):
    model = model_with_mtp(depth=1, seed=seed)
    prompt = torch.randint(0, 50, (1, 5), generator=torch.Generator().manual_seed(seed))
    greedy = greedy_generate(model, prompt, 12)
    spec = self_speculative_generate(model, prompt, 12)
    assert torch.equal(spec.tokens, greedy.tokens)
    assert spec.tokens.shape == (1, 17)
    assert 0 <= spec.accepted <= spec.drafted
    assert spec.passes + spec.accepted >= 12 and spec.passes <= 12


def test_speculation_with_a_perfect_drafter_halves_the_passes():
    """If the MTP head always agrees with the main model, every draft is accepted: 2 tokens per pass."""
    model = model_with_mtp(depth=1)
    with torch.no_grad():  # zero final norms: all logits 0, so both the main model and the MTP head say token 0
        model.model.norm.weight.zero_()
        model.mtp[0].norm.weight.zero_()
    spec = self_speculative_generate(model, torch.zeros(1, 3, dtype=torch.long), 10)
    assert spec.acceptance_rate == 1.0
    assert spec.passes == 6  # pass 1 yields 1 token, passes 2-5 yield 2 each, pass 6 verifies the last draft
    assert (spec.tokens[0, 3:] == 0).all()


def test_bad_input_raises():
    model = model_with_mtp(depth=1)
    with pytest.raises(ValueError, match="prompt must be a LongTensor of shape \\(1, P\\)"):
        self_speculative_generate(model, torch.zeros(2, 3, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int"):
        greedy_generate(model, torch.zeros(1, 3, dtype=torch.long), 0)
    with pytest.raises(ValueError, match="needs a model with at least one MTP module"):
        self_speculative_generate(model_with_mtp(depth=0), torch.zeros(1, 3, dtype=torch.long), 4)
    with pytest.raises(TypeError, match="block must be an nn.Module"):
        MTPModule(8, block="layer")
    with pytest.raises(ValueError, match="h_prev and emb must both be \\(B, T, d\\)"):
        model.mtp[0](torch.randn(1, 4, 64), torch.randn(1, 3, 64))
