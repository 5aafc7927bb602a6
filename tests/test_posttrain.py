"""Chapter 04d's pieces without TRL: laws of GRPO, masking, packing, rewards, LoRA-off reference, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.models.llama import LlamaConfig, LlamaForCausalLM
from course_lib.peft.lora import disable_adapter, inject_lora, lora_layers, merge
from course_lib.posttrain import dpo, grpo, rewards, sft
from course_lib.posttrain.logprobs import completion_logprobs, sequence_logprobs, token_logprobs


@pytest.fixture(scope="module")
def tiny_model(one_thread):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 6), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_advantages_sum_to_zero_per_group(group_size, groups, seed):
    r = torch.rand(groups * group_size, generator=torch.Generator().manual_seed(seed)).round(decimals=1)
    adv = grpo.group_advantages(r, group_size).view(groups, group_size)
    torch.testing.assert_close(adv.sum(1), torch.zeros(groups), atol=1e-4, rtol=0)
    std = r.view(groups, group_size).std(1)
    torch.testing.assert_close(adv.std(1), std / (std + 1e-4), atol=1e-4, rtol=0)  # unit std up to the ε


def test_one_policy_step_has_ratio_one_and_no_clip():
    logp = torch.randn(4, 5, requires_grad=True)
    adv, mask = torch.tensor([2.0, -1.0, 0.5, -1.5]), torch.ones(4, 5)
    out = grpo.grpo_loss(logp, None, adv, mask, epsilon=0.2)
    assert torch.equal(out.ratio, torch.ones(4, 5)) and out.clip_ratio == 0.0
    out.loss.backward()  # ratio 1: the gradient is the policy gradient −Â ∇log π / number of tokens
    torch.testing.assert_close(logp.grad, -adv[:, None].expand(4, 5) / 20)


def test_k3_is_nonnegative_and_unbiased():
    g = torch.Generator().manual_seed(0)
    p, q = torch.softmax(torch.randn(20, generator=g), 0), torch.softmax(torch.randn(20, generator=g), 0)
    samples = torch.multinomial(p, 200_000, replacement=True, generator=g)  # tokens drawn from π_θ = p
    k3 = grpo.k3_kl(p.log()[samples], q.log()[samples])
    assert (k3 >= 0).all()
    assert k3.mean().item() == pytest.approx((p * (p / q).log()).sum().item(), rel=0.05)  # E_p[k3] = KL(p‖q)


def test_masking_ignores_pad_and_prompt_tokens(tiny_model):
    g = torch.Generator().manual_seed(1)
    prompt, completion = torch.randint(3, 50, (2, 6), generator=g), torch.randint(3, 50, (2, 4), generator=g)
    prompt_mask, completion_mask = torch.ones(2, 6, dtype=torch.long), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    prompt_mask[0, :2] = 0
    logp = completion_logprobs(tiny_model, prompt, prompt_mask, completion, completion_mask)
    changed = completion.clone()
    changed[0, 2:] = 7  # a different pad token after the stop
    prompt2 = prompt.clone()
    prompt2[0, :2] = 9  # a different pad token in the prompt
    logp2 = completion_logprobs(tiny_model, prompt2, prompt_mask, changed, completion_mask)
    torch.testing.assert_close(sequence_logprobs(logp, completion_mask), sequence_logprobs(logp2, completion_mask))
    alone = completion_logprobs(tiny_model, prompt[:1, 2:], prompt_mask[:1, 2:], completion[:1, :2],
                                completion_mask[:1, :2])  # the row without any padding
    torch.testing.assert_close(logp[:1, :2], alone, atol=1e-5, rtol=1e-5)
    loss = grpo.grpo_loss(logp, None, torch.tensor([1.0, -1.0]), completion_mask).loss
    loss2 = grpo.grpo_loss(logp2, None, torch.tensor([1.0, -1.0]), completion_mask).loss
    torch.testing.assert_close(loss, loss2)


def test_assistant_mask_covers_only_assistant_turns():
    from course_lib import pretrained

    tok = pretrained.smollm2_tokenizer()
    chat = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "<answer>5</answer>"},
            {"role": "user", "content": "And 4 - 1?"}, {"role": "assistant", "content": "<answer>3</answer>"}]
    ids, mask = sft.render_with_mask(chat, tok, pretrained.smollm2_chat_template())
    assert ids == tok.encode(pretrained.smollm2_chat_prompt(chat, add_generation_prompt=False))
    assert tok.decode([i for i, m in zip(ids, mask) if m]) == "<answer>5</answer><|im_end|>\n<answer>3</answer><|im_end|>\n"
    with pytest.raises(ValueError, match="no assistant turn"):
        sft.render_with_mask(chat[:1], tok, pretrained.smollm2_chat_template())


def test_packed_mask_is_block_diagonal():
    pos = torch.tensor([[0, 1, 2, 0, 1, 0]])
    mask = sft.packed_causal_mask(pos)[0, 0]
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[:3, :3] = torch.ones(3, 3).tril().bool()
    expected[3:5, 3:5] = torch.ones(2, 2).tril().bool()
    expected[5, 5] = True
    assert torch.equal(mask, expected)


def test_lora_off_reference_is_the_base_model(tiny_model):
    import copy

    model = copy.deepcopy(tiny_model)
    inject_lora(model, "all-linear", r=4)
    for layer in lora_layers(model).values():
        torch.nn.init.normal_(layer.lora_B.weight, std=0.5)
    ids = torch.randint(3, 50, (2, 7))
    with torch.no_grad():
        with disable_adapter(model):
            off = model(ids).logits
        on = model(ids).logits
        torch.testing.assert_close(off, tiny_model(ids).logits)
    assert (on - off).abs().max() > 1e-3  # the adapter is back on after the block
    merge(model)
    with pytest.raises(ValueError, match="merged"), disable_adapter(model):
        pass


def test_dpo_loss_values_and_zero_at_start(tiny_model):
    import copy

    out = dpo.dpo_loss(torch.tensor([-3.0]), torch.tensor([-5.0]), torch.tensor([-4.0]), torch.tensor([-4.0]), beta=0.5)
    assert out.loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.5 * 2))))
    assert out.margins.item() == pytest.approx(1.0) and out.accuracy == 1.0
    model = copy.deepcopy(tiny_model)
    inject_lora(model, "all-linear", r=4)  # B = 0: policy = reference, every reward 0, loss log 2
    ids = torch.randint(3, 50, (4, 6))
    cmask = torch.ones(4, 6, dtype=torch.long)
    cmask[:, :3] = 0
    start = dpo.dpo_batch_loss(model, ids, torch.ones_like(ids), cmask)
    assert start.loss.item() == pytest.approx(math.log(2), abs=1e-6)
    assert start.margins.abs().max().item() == 0.0


def test_rewards_and_splits():
    dev, held = rewards.arithmetic_problems("dev", 441), rewards.arithmetic_problems("heldout", 441)  # all of 0..20
    assert not {(p.a, p.op, p.b) for p in dev} & {(p.a, p.op, p.b) for p in held}
    assert dev == rewards.arithmetic_problems("dev", 441) and dev[0] != rewards.arithmetic_problems("dev", 1, seed=1)[0]
    with pytest.raises(ValueError, match="exceeds the 441 problems"):
        rewards.arithmetic_problems("heldout", 442)
    texts = ["<answer>5</answer>", "The answer is <answer> 5 </answer>", "5", "<answer>6</answer>"]
    assert rewards.format_reward(texts) == [1.0, 0.0, 0.0, 1.0]
    assert rewards.correctness_reward(texts, [5] * 4) == [1.0, 1.0, 0.0, 0.0]
    assert rewards.total_reward(texts, [5] * 4) == [1.5, 1.0, 0.0, 0.5]
    assert rewards.number_accuracy(texts + ["2 + 3 = 5", "5 or 6", "none"], [5] * 7) == 4 / 7


def test_bad_input():
    with pytest.raises(ValueError, match="group_size must be an int ≥ 2"):
        grpo.group_advantages(torch.ones(4), 1)
    with pytest.raises(ValueError, match="NaN"):
        grpo.group_advantages(torch.tensor([1.0, float("nan")]), 2)
    with pytest.raises(ValueError, match="multiple of group_size"):
        grpo.group_advantages(torch.ones(5), 2)
    with pytest.raises(ValueError, match="no completion token"):
        grpo.grpo_loss(torch.zeros(2, 3), None, torch.zeros(2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="advantages must be"):
        grpo.grpo_loss(torch.zeros(2, 3), None, torch.zeros(3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="must all be"):
        grpo.grpo_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="needs ref_logp"):
        grpo.grpo_loss(torch.zeros(2, 3), None, torch.zeros(2), torch.ones(2, 3), beta=0.1)
    with pytest.raises(ValueError, match="non-empty completion"):
        completion_logprobs(None, torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3), torch.ones(2, 0, dtype=torch.long),
                            torch.ones(2, 0))
    with pytest.raises(ValueError, match="must all be"):
        dpo.dpo_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="at least one completion token"):
        dpo.pair_logprobs(None, torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="same length"):
        rewards.correctness_reward(["a", "b"], [1])
    with pytest.raises(ValueError, match="non-empty list"):
        rewards.format_reward([])
    with pytest.raises(ValueError, match="split must be"):
        rewards.arithmetic_problems("test", 3)
    with pytest.raises(ValueError, match="max_length"):
        sft.pack([([1, 2, 3], [0, 1, 1])], max_length=2)
    with pytest.raises(ValueError, match="equal length"):
        sft.pack([([1, 2, 3], [0, 1])], max_length=8)
    with pytest.raises(ValueError, match="every label is -100"):
        sft.sft_loss(torch.zeros(1, 3, 5), torch.full((1, 3), -100))
    with pytest.raises(ValueError, match="targets"):
        token_logprobs(torch.zeros(1, 3, 5), torch.zeros(1, 2, dtype=torch.long))


def test_rollout_pieces_on_a_tiny_model():
    """sample → score → grpo_step run on a LoRA model; only the adapter moves; the mask stops after the stop token."""
    from course_lib import pretrained
    from course_lib.posttrain import rollout

    tok = pretrained.smollm2_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256)
    model = LlamaForCausalLM(config).eval()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    inject_lora(model, "all-linear", r=4)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    problems = rewards.arithmetic_problems("dev", 2)
    stop = tok.special_tokens["<|im_end|>"]
    sampled = rollout.sample(model, tok, rollout.chat_prompt_ids(tok, pretrained.smollm2_chat_prompt, problems), 3, 5,
                             1.0, stop, tok.pad_token_id, torch.Generator().manual_seed(0))
    prompt_ids, prompt_mask, completion_ids, completion_mask, texts = sampled
    assert completion_ids.shape == (6, 5) and len(texts) == 6 and prompt_ids.shape[0] == 6
    assert (completion_mask.sum(1) >= 1).all()
    ro = rollout.Rollout(*sampled, *rollout.score(problems, 3, texts))
    ro.advantages = torch.tensor([1.0, -1.0, 0.0, 0.5, -0.5, 0.0])  # random text scores 0: give the step a signal
    out = rollout.grpo_step(model, opt, ro, beta=0.04)
    assert out.clip_ratio == 0.0 and torch.equal(out.ratio, torch.ones_like(out.ratio))
    state = {k.replace(".base_layer.", "."): v for k, v in model.state_dict().items() if ".lora_" not in k}
    assert all(torch.equal(state[k], v) for k, v in base.items())  # the base weights never move
    assert any(layer.lora_B.weight.abs().sum() > 0 for layer in lora_layers(model).values())



def test_instruction_shows_no_answer_to_copy():
    """The old instruction's example ``<answer>7</answer>`` was copied by SmolLM2 ('18 - 0 is 7'): no digit may appear."""
    p = rewards.arithmetic_problems("dev", 1)[0]
    assert [m["role"] for m in p.messages] == ["system", "user"]
    assert not any(ch.isdigit() for ch in p.messages[0]["content"])
    assert p.demonstration()[-1] == {"role": "assistant", "content": f"<answer>{p.answer}</answer>"}
    assert rewards.format_reward([p.demonstration()[-1]["content"]]) == [1.0]


def test_group_signal_counts_groups_with_unequal_rewards():
    from course_lib.posttrain.loop import group_signal

    r = torch.tensor([0.5, 0.5, 0.5, 1.5, 0.0, 0.0, 0.0, 0.0])
    assert group_signal(r, 4) == 0.5 and group_signal(r, 2) == 0.25 and group_signal(torch.zeros(6), 3) == 0.0
    adv = grpo.group_advantages(r, 4)
    assert (adv[:4] != 0).all()
    assert adv[4:].abs().sum() == 0  # an all-equal group has no advantage: nothing to learn from it


def test_grpo_train_loop_on_a_tiny_model():
    from course_lib import pretrained
    from course_lib.posttrain.loop import grpo_train

    tok = pretrained.smollm2_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256)
    model = LlamaForCausalLM(config).eval()
    inject_lora(model, "all-linear", r=4)
    kwargs = dict(steps=3, prompts_per_step=2, num_generations=3, max_new_tokens=4, lr=1e-2,
                  stop_id=tok.special_tokens["<|im_end|>"], pad_id=tok.pad_token_id,
                  template_fn=pretrained.smollm2_chat_prompt)
    problems = rewards.arithmetic_problems("dev", 3)
    runs = list(grpo_train(model, tok, problems, **kwargs))
    assert len(runs) == 3 and all(ro.rewards.shape == (6,) for _, ro in runs)
    assert set(runs[0][0]) == {"reward", "accuracy", "format", "signal", "kl", "loss", "tokens", "seconds"}
    assert runs[0][0]["kl"] == 0.0  # step 1: B = 0, the policy is the reference
    assert all(math.isfinite(s["loss"]) and s["tokens"] > 0 for s, _ in runs)
    with pytest.raises(ValueError, match="num_generations"):
        next(grpo_train(model, tok, problems, **{**kwargs, "num_generations": 1}))
    with pytest.raises(ValueError, match="problems"):
        next(grpo_train(model, tok, [], **kwargs))
