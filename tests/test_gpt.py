"""Our GPT vs HF ``GPT2LMHeadModel`` with the same random tiny-config weights (Conv1D transposed
through ``gpt.HF_CONV1D``). Tolerance: ``assert_close``'s fp32 default (rtol 1.3e-6, atol 1e-5): the
same operations in the same order, only fp32 rounding differs; 1e-4 for the fused-kernel path.
"""

from __future__ import annotations

import copy

import pytest
import torch

from course_lib.generation import generate, pad_left
from course_lib.models.gpt import GPT, HF_CONV1D, GPTConfig

TINY = dict(vocab_size=101, n_positions=16, n_embd=32, n_layer=3, n_head=4, layer_norm_epsilon=1e-5)


@pytest.fixture(scope="module")
def pair():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    ref = GPT2LMHeadModel(GPT2Config(**TINY, attn_implementation="eager")).eval()
    with torch.no_grad():  # HF starts LayerNorms at 1/0 and biases at 0: randomise so every name map matters
        for name, p in ref.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.normal_(0, 0.1 if name.endswith("bias") else 1.0)
    ours = GPT.from_hf(ref.config, ref.state_dict())
    return ours, ref


@pytest.fixture(scope="module")
def sharp_pair(pair):
    """The pair with N(0, 0.2) weights: HF's N(0, 0.02) init repeats one token, so greedy tests would not see positions."""
    ours, ref = pair
    ref = copy.deepcopy(ref)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("weight") and ".ln_" not in name:
                p.normal_(0, 0.2)
    return GPT.from_hf(ref.config, ref.state_dict()), ref


def test_logits_and_attentions_equal_hf(pair):
    ours, ref = pair
    ids = torch.randint(0, 101, (2, 16))
    with torch.no_grad():
        want = ref(ids, output_attentions=True)
        got = ours(ids, output_attentions=True)
    torch.testing.assert_close(got.logits, want.logits)
    assert len(got.attentions) == 3 and got.attentions[0].shape == (2, 4, 16, 16)
    for a, b in zip(got.attentions, want.attentions):
        torch.testing.assert_close(a, b)
    assert torch.all(got.attentions[0].triu(1) == 0)  # causal: nothing above the diagonal


def test_fast_path_equals_explicit_attention(pair):
    ours, _ = pair
    ids = torch.randint(0, 101, (2, 13))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, ours(ids, output_attentions=True).logits, rtol=1e-4, atol=1e-4)


def test_loss_and_gradients_equal_hf(pair):
    ours, ref = pair
    ids = torch.randint(0, 101, (2, 12))
    want = ref(ids, labels=ids).loss
    logits = ours(ids).logits
    got = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 101), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(got, want)
    want.backward()
    got.backward()
    torch.testing.assert_close(ours.transformer.h[0].attn.c_attn.weight.grad,
                               ref.transformer.h[0].attn.c_attn.weight.grad.t(), rtol=1e-4, atol=1e-6)
    ours.zero_grad()
    ref.zero_grad()


def test_greedy_generate_equals_hf(pair):
    ours, ref = pair
    ids = torch.randint(0, 101, (1, 4))
    want = ref.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert ours.generate(ids, max_new_tokens=8).tolist() == want.tolist()


def test_cached_decode_step_equals_full_forward_at_every_step(pair):
    """Prefill 5 tokens, then one token a step up to all 16 positions.

    atol = rtol = 1e-5: the same products, but one query against t cached keys is a different
    kernel call than the (T × T) causal one, so fp32 sums run in another order.
    """
    ours, _ = pair
    ids = torch.randint(0, 101, (2, 16))
    with torch.no_grad():
        full = ours(ids).logits  # (B, T, V)
        cache = ours.new_cache(2, 16)
        logits, cache = ours.decode_step(ids[:, :5], cache)
        torch.testing.assert_close(logits, full[:, 4], atol=1e-5, rtol=1e-5)
        for t in range(5, 16):
            logits, cache = ours.decode_step(ids[:, t:t + 1], cache)
            torch.testing.assert_close(logits, full[:, t], atol=1e-5, rtol=1e-5)
    assert cache.length == 16 and cache.keys.shape == (3, 2, 4, 16, 8)  # (L, B, H, max_len, Dh)


def test_cached_greedy_generate_equals_hf_with_its_cache(sharp_pair):
    ours, ref = sharp_pair
    ids = torch.randint(0, 101, (2, 4))
    want = ref.generate(ids, max_new_tokens=12, do_sample=False, use_cache=True, pad_token_id=0)
    assert len(set(want[0, 4:].tolist())) > 4  # not one repeated token
    assert ours.generate(ids, 12).tolist() == want.tolist()  # 16 tokens: the whole context, cached
    assert generate(ours, ids, 12, use_cache=False).tolist() == want.tolist()


def test_left_padded_batch_equals_each_prompt_alone_and_hf(sharp_pair):
    """Prompts of 2, 7 and 4 tokens: learned positions count real tokens only, pads are masked."""
    ours, ref = sharp_pair
    gen = torch.Generator().manual_seed(3)
    prompts = [torch.randint(1, 101, (n,), generator=gen).tolist() for n in (2, 7, 4)]
    ids, mask = pad_left(prompts, pad_token_id=0)
    batch = ours.generate(ids, 8, attention_mask=mask)
    for row, p in enumerate(prompts):
        alone = ours.generate(torch.tensor([p]), 8)
        assert batch[row, ids.shape[1]:].tolist() == alone[0, len(p):].tolist()
    want = ref.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, use_cache=True, pad_token_id=0)
    assert batch.tolist() == want.tolist()
    with torch.no_grad():  # the padded row's logits at its real positions equal the prompt's alone (fp32 order)
        padded = ours(ids, attention_mask=mask).logits[0, -2:]
        torch.testing.assert_close(padded, ours(torch.tensor([prompts[0]])).logits[0], atol=1e-5, rtol=1e-5)


def test_cache_limits(pair):
    ours, _ = pair
    ids = torch.randint(0, 101, (1, 10))
    with pytest.raises(ValueError, match="max_len 17 exceeds the context window 16"):
        ours.new_cache(1, 17)
    with pytest.raises(ValueError, match="cache for batch 1 × 8 positions cannot take 1 × 10"):
        ours.decode_step(ids, ours.new_cache(1, 8))
    cache = ours.new_cache(1, 16)
    ours.decode_step(ids, cache)
    with pytest.raises(ValueError, match="17 tokens exceeds the context window of 16 \\(n_positions\\)"):
        ours.decode_step(ids[:, :7], cache)
    with pytest.raises(ValueError, match="exceeds the context window of 16 tokens"):
        generate(ours, ids, 7)  # the Decoder protocol stops at n_positions; GPT.generate slides a window past it
    assert ours.generate(ids, 7).shape == (1, 17)


def test_name_map_covers_conv1d_only(pair):
    _, ref = pair
    conv = [n for n, m in ref.named_modules() if type(m).__name__ == "Conv1D"]
    assert sorted({n.split(".", 3)[-1] + ".weight" for n in conv}) == sorted(HF_CONV1D)


def test_bad_input(pair):
    ours, ref = pair
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 101\)"):
        ours(torch.tensor([[5, 101]]))
    with pytest.raises(ValueError, match="learned positions for at most 16"):
        ours(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(TypeError, match="integer tensor"):
        ours(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        ours(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible by n_head"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int"):
        ours.generate(torch.zeros(1, 2, dtype=torch.long), -1)
    sd = dict(ref.state_dict())
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1
    with pytest.raises(ValueError, match="lm_head.weight differs from transformer.wte.weight"):
        GPT.from_hf(ref.config, sd)


def test_attention_widget_reads_our_outputs(pair):
    from course_lib.viz.attention import attention_widget, collect_attentions

    ours, _ = pair
    maps = collect_attentions(ours, torch.randint(0, 101, (1, 5)), tokens=list("abcde"))
    assert len(maps) == 3 and maps[0].shape == (1, 4, 5, 5)
    attention_widget(maps, list("abcde"))  # builds without error; causal mask detected from the weights
