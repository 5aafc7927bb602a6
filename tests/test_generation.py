"""Samplers, decode loop, streaming and chat template against transformers.

Samplers are compared with HF logits processors on the same random logits (fp32, atol = rtol =
1e-6: both compute the same elementwise ops and softmax/cumsum over the same order; -inf
positions must match exactly). Generation is compared token by token (ids: exact).
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from course_lib.generation import (
    apply_repetition_penalty,
    generate,
    generate_tokens,
    next_token_probs,
    process_logits,
    sample_next_token,
    stream,
    top_k_filter,
    top_p_filter,
)
from course_lib.pretrained import smollm2_chat_prompt
from course_lib.tokenizers.chat_template import render_chat

TOL = dict(atol=1e-6, rtol=1e-6)


@pytest.fixture
def logits():
    return torch.randn(4, 50) * 3


@pytest.mark.parametrize("k", [1, 5, 50, 80])
def test_top_k_equals_hf(logits, k):
    from transformers import TopKLogitsWarper

    assert_close(top_k_filter(logits, k), TopKLogitsWarper(k)(None, logits.clone()), **TOL)


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 1.0])
def test_top_p_equals_hf(logits, p):
    from transformers import TopPLogitsWarper

    assert_close(top_p_filter(logits, p), TopPLogitsWarper(p)(None, logits.clone()), **TOL)


@pytest.mark.parametrize("penalty", [0.7, 1.3])
def test_repetition_penalty_equals_hf(logits, penalty):
    from transformers import RepetitionPenaltyLogitsProcessor

    seen = torch.randint(0, 50, (4, 7))
    ref = RepetitionPenaltyLogitsProcessor(penalty)(seen, logits.clone())
    assert_close(apply_repetition_penalty(logits, seen, penalty), ref, **TOL)


def test_processing_chain_equals_hf(logits):
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    chain = LogitsProcessorList([TemperatureLogitsWarper(0.7), TopKLogitsWarper(10), TopPLogitsWarper(0.8)])
    assert_close(process_logits(logits, 0.7, 10, 0.8), chain(None, logits.clone()), **TOL)


def test_sampler_distribution_and_greedy(logits):
    probs = next_token_probs(logits, temperature=0.8, top_k=5)
    assert_close(probs.sum(-1), torch.ones(4))
    assert int((probs > 0).sum(-1).max()) <= 5
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next_token(logits, 0.8, top_k=5, generator=gen) for _ in range(4000)])  # (N, 4)
    freq = torch.stack([torch.bincount(draws[:, r], minlength=50).float() / 4000 for r in range(4)])
    assert (freq - probs).abs().max() < 0.04  # 4000 draws: std of a frequency <= 0.008, so 5 sigma
    assert torch.equal(sample_next_token(logits, temperature=0), logits.argmax(-1))
    assert torch.equal(sample_next_token(logits, temperature=1.0, top_k=1), logits.argmax(-1))
    assert torch.equal(next_token_probs(logits, temperature=0).argmax(-1), logits.argmax(-1))
    a = sample_next_token(logits, 1.0, generator=torch.Generator().manual_seed(3))
    b = sample_next_token(logits, 1.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_greedy_32_tokens_equal_hf_generate(smollm2, hf_smollm2, smollm2_bpe):
    prompts = ["The three primary colors are",
               smollm2_chat_prompt([{"role": "user", "content": "用一句话介绍一下长城。"}])]
    for text in prompts:
        ids = torch.tensor([smollm2_bpe.encode(text)])
        with torch.no_grad():
            ref = hf_smollm2.generate(ids, max_new_tokens=32, do_sample=False, min_new_tokens=32,
                                      attention_mask=torch.ones_like(ids))
        ours = generate(smollm2, ids, 32)
        assert ours.shape == (1, ids.shape[1] + 32)
        assert ours.tolist() == ref.tolist()


def test_cache_and_recompute_generate_the_same_tokens(smollm2, smollm2_bpe):
    ids = torch.tensor([smollm2_bpe.encode("def add(a, b):")])
    cached = generate(smollm2, ids, 12, use_cache=True)
    recomputed = generate(smollm2, ids, 12, use_cache=False)
    assert cached.tolist() == recomputed.tolist()
    gen = lambda: torch.Generator().manual_seed(7)
    sampled = [generate(smollm2, ids, 8, temperature=0.9, top_p=0.9, generator=gen(), use_cache=c) for c in (True, False)]
    assert sampled[0].tolist() == sampled[1].tolist()


def test_left_padded_batch_generates_like_single_prompts(smollm2, smollm2_bpe):
    prompts = [smollm2_bpe.encode("Once upon a time"), smollm2_bpe.encode("Python is a programming language that")]
    T = max(map(len, prompts))
    ids = torch.tensor([[2] * (T - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts])
    batch = generate(smollm2, ids, 10, attention_mask=mask)
    for row, p in enumerate(prompts):
        single = generate(smollm2, torch.tensor([p]), 10)
        assert batch[row, T:].tolist() == single[0, len(p):].tolist()


def test_stop_tokens_and_padding_after_stop(smollm2, smollm2_bpe):
    ids = torch.tensor([smollm2_bpe.encode(smollm2_chat_prompt([{"role": "user", "content": "Say hi."}]))])
    out = generate(smollm2, ids, 40, stop_tokens=[2], pad_token_id=0)
    new = out[0, ids.shape[1]:].tolist()
    assert new[-1] == 2 and 2 not in new[:-1] and len(new) < 40


def test_logits_processor_equals_hf(smollm2, hf_smollm2, smollm2_bpe):
    def no_even_ids(input_ids, scores):  # changes every greedy choice the model would make on its own
        return scores.masked_fill(torch.arange(scores.shape[-1]) % 2 == 0, float("-inf"))

    ids = torch.tensor([smollm2_bpe.encode("The capital of France is")])
    with torch.no_grad():
        ref = hf_smollm2.generate(ids, max_new_tokens=10, do_sample=False, min_new_tokens=10,
                                  attention_mask=torch.ones_like(ids), logits_processor=[no_even_ids])
    ours = generate(smollm2, ids, 10, logits_processor=no_even_ids)
    assert ours.tolist() == ref.tolist()
    assert all(t % 2 == 1 for t in ours[0, ids.shape[1]:].tolist())


def test_repetition_penalty_reduces_repeats(smollm2, smollm2_bpe):
    ids = torch.tensor([smollm2_bpe.encode("one, one, one, one, one, one")])
    plain = generate(smollm2, ids, 8)[0, ids.shape[1]:].tolist()
    penalised = generate(smollm2, ids, 8, repetition_penalty=1.5)[0, ids.shape[1]:].tolist()
    repeats = lambda seq: sum(t in ids[0].tolist() for t in seq)  # new tokens already in the prompt
    assert repeats(penalised) < repeats(plain)


def test_stream_pieces_join_to_the_decoded_text(smollm2, smollm2_bpe):
    text = smollm2_chat_prompt([{"role": "user", "content": "用中文说：你好，世界"}])
    ids = torch.tensor([smollm2_bpe.encode(text)])
    pieces = list(stream(smollm2, smollm2_bpe, ids, 16, stop_tokens=[2]))
    full = generate(smollm2, ids, 16, stop_tokens=[2])[0, ids.shape[1]:].tolist()
    assert "".join(pieces) == smollm2_bpe.decode(full, skip_special_tokens=True)
    assert len(pieces) > 1 and all("\ufffd" not in p for p in pieces)


def test_chat_template_equals_hf(hf_smollm2_tokenizer):
    conversations = [
        [{"role": "user", "content": "你好"}],
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"},
         {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3? 🤔"}],
    ]
    for messages in conversations:
        for add in (True, False):
            ref = hf_smollm2_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add)
            assert smollm2_chat_prompt(messages, add_generation_prompt=add) == ref
    assert smollm2_chat_prompt(conversations[0]).startswith("<|im_start|>system\nYou are a helpful AI assistant")


def test_chat_template_is_sandboxed():
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        render_chat([{"role": "user", "content": "x"}], "{{ messages.__class__.__mro__[1].__subclasses__() }}")


def test_bad_input_raises_clear_errors(smollm2, logits):
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        sample_next_token(logits, top_p=1.5)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        top_p_filter(logits, 0.0)
    with pytest.raises(ValueError, match="temperature must be a number >= 0"):
        sample_next_token(logits, temperature=-0.5)
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        top_k_filter(logits, 0)
    with pytest.raises(ValueError, match="repetition_penalty must be a number > 0"):
        generate(smollm2, ids, 2, repetition_penalty=0)
    with pytest.raises(ValueError, match="exceeds the context window of 8192"):
        generate(smollm2, torch.zeros(1, 8190, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int"):
        generate(smollm2, ids, 0)
    with pytest.raises(TypeError, match="torch.long tensor of shape"):
        generate(smollm2, torch.tensor([1, 2]), 2)
    with pytest.raises(ValueError, match="input_ids must lie in"):
        generate(smollm2, torch.tensor([[1, 60000]]), 2)
    with pytest.raises(TypeError, match="floating-point"):
        sample_next_token(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="attention_mask must have the shape"):
        list(generate_tokens(smollm2, ids, 2, attention_mask=torch.ones(1, 2)))
    with pytest.raises(ValueError, match="role"):
        smollm2_chat_prompt([{"role": "robot", "content": "hi"}])
    with pytest.raises(ValueError, match="non-empty list"):
        smollm2_chat_prompt([])
    with pytest.raises(TypeError, match="content"):
        smollm2_chat_prompt([{"role": "user", "content": 3}])
