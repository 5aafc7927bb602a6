"""The one decoding interface: every decoder through ``generation.generate``, batched = unbatched.

Greedy outputs are compared token for token (ids: exact) with the plain loop each model used
before the interface ("append the argmax and run the model again"), written out here as the
reference. Logits of the fused inference path are compared with the module-by-module path at
fp32 atol = rtol = 1e-5 (same products, one matmul instead of several: summation order may differ).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.generation import Decoder, Recompute, generate, generate_tokens, pad_left
from course_lib.models.deepseek import DeepSeekConfig, DeepSeekForCausalLM, greedy_generate
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.models.llama import LlamaConfig, LlamaForCausalLM
from course_lib.models.rnn import LSTMLanguageModel, LSTMLMConfig
from course_lib.models.t5 import T5Config, T5ForConditionalGeneration

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


@torch.no_grad()
def sharpen(model: nn.Module, std: float) -> nn.Module:
    """N(0, std) weights (norms kept): a tiny model at its small init repeats one token, hiding position errors."""
    for p in model.parameters():
        if p.dim() > 1:
            p.normal_(0, std)
    return model


@torch.no_grad()
def plain_greedy(logits_fn, ids: torch.Tensor, n: int) -> torch.Tensor:
    """The loop every model carried before: full recompute, argmax, append."""
    for _ in range(n):
        ids = torch.cat([ids, logits_fn(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


def test_every_decoder_satisfies_the_protocol():
    llama = tiny_llama()
    lstm = LSTMLanguageModel(LSTMLMConfig(vocab_size=30, embed_dim=8, hidden_size=16))
    gpt = GPT(GPTConfig(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2))
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=30, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2))
    assert all(isinstance(m, Decoder) for m in (llama, lstm, gpt, Recompute(llama), t5.as_decoder(torch.ones(1, 3).long())))
    deepseek = DeepSeekForCausalLM(DeepSeekConfig(vocab_size=50))  # new_cache but no decode_step
    assert not isinstance(deepseek, Decoder)
    with pytest.raises(TypeError, match="Decoder protocol .* Recompute"):
        generate(deepseek, torch.zeros(1, 2, dtype=torch.long), 3)


def test_gpt_t5_lstm_mtp_greedy_equal_their_plain_loops():
    torch.manual_seed(0)
    gpt = sharpen(GPT(GPTConfig(vocab_size=101, n_positions=16, n_embd=32, n_layer=2, n_head=4, dropout=0.0)), 0.2)
    ids = torch.randint(0, 101, (2, 4))
    window = lambda x: gpt(x[:, -16:]).logits  # noqa: E731 - the sliding window of the old loop
    assert gpt.generate(ids, 20).tolist() == plain_greedy(window, ids, 20).tolist()  # past the 16-token window
    want = plain_greedy(window, ids, 12)
    assert min(len(set(row[4:])) for row in want.tolist()) >= 4  # not one repeated token
    assert gpt.generate(ids, 12).tolist() == want.tolist()  # within the window: the KV cache

    torch.manual_seed(1)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=60, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                                             num_decoder_layers=3, num_heads=4, relative_attention_num_buckets=8,
                                             relative_attention_max_distance=6)).eval()
    sharpen(t5, 0.5)
    src, mask = torch.randint(1, 60, (2, 9)), torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    start = torch.zeros(2, 1, dtype=torch.long)  # decoder_start_token_id; 15 steps pass max_distance 6
    want = plain_greedy(lambda dec: t5(src, dec, attention_mask=mask).logits, start, 15)
    assert min(len(set(row)) for row in want.tolist()) > 4  # not one repeated token
    assert t5.generate(src, 15, attention_mask=mask).tolist() == want.tolist()
    assert t5.generate(src, 15, attention_mask=mask, use_cache=False).tolist() == want.tolist()

    lstm = LSTMLanguageModel(LSTMLMConfig(vocab_size=30, embed_dim=8, hidden_size=16, num_layers=2))
    ids = torch.randint(0, 30, (2, 5))
    assert lstm.generate(ids, 10, temperature=0).tolist() == plain_greedy(lambda x: lstm(x)[0], ids, 10).tolist()

    torch.manual_seed(1)
    deepseek = DeepSeekForCausalLM(DeepSeekConfig(vocab_size=50, num_nextn_predict_layers=1)).eval()
    prompt = torch.randint(0, 50, (1, 5))
    want = plain_greedy(lambda x: deepseek(x).logits, prompt, 12)
    assert greedy_generate(deepseek, prompt, 12).tokens.tolist() == want.tolist()


def test_lstm_sampling_keeps_its_random_stream():
    """Sampling through the shared sampler draws the same tokens as softmax(z/τ) + multinomial did."""
    lstm = LSTMLanguageModel(LSTMLMConfig(vocab_size=30, embed_dim=8, hidden_size=16))
    ids = torch.randint(0, 30, (2, 3))
    torch.manual_seed(5)
    ours = lstm.generate(ids, 6, temperature=0.8)
    torch.manual_seed(5)
    with torch.no_grad():
        logits, state = lstm(ids)
        want = [ids]
        for _ in range(6):
            nxt = torch.multinomial(torch.softmax(logits[:, -1] / 0.8, -1), 1)
            want.append(nxt)
            logits, state = lstm(nxt, state)
    assert ours.tolist() == torch.cat(want, 1).tolist()


def test_llama_decode_step_equals_forward_and_cache_equals_recompute():
    model = tiny_llama()
    ids = torch.randint(0, 97, (2, 7))
    with torch.no_grad():
        full = model(ids).logits  # (B, T, V)
        cache = model.new_cache(2, 10)
        first, cache = model.decode_step(ids[:, :5], cache)
        last, cache = model.decode_step(ids[:, 5:], cache)
    torch.testing.assert_close(first, full[:, 4], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last, full[:, 6], atol=1e-5, rtol=1e-5)
    assert cache.length == 7
    assert generate(model, ids, 9).tolist() == generate(model, ids, 9, use_cache=False).tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_left_padded_batch_equals_each_prompt_alone_tiny(seed):
    """Three prompts of lengths 2, 9 and 5: positions (RoPE) count real tokens only, pads are masked."""
    model = tiny_llama(seed)
    gen = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, 97, (n,), generator=gen).tolist() for n in (2, 9, 5)]
    ids, mask = pad_left(prompts, pad_token_id=0)
    assert mask.tolist()[0] == [0] * 7 + [1] * 2
    batch = generate(model, ids, 12, attention_mask=mask)
    for row, p in enumerate(prompts):
        alone = generate(model, torch.tensor([p]), 12)
        assert batch[row, ids.shape[1]:].tolist() == alone[0, len(p):].tolist()
    with torch.no_grad():  # the padded row's logits equal the unpadded prompt's, at every real position
        padded = model(ids, attention_mask=mask).logits[0, -2:]
        alone = model(torch.tensor([prompts[0]])).logits[0]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_fused_inference_weights_follow_the_modules():
    model = tiny_llama()
    ids = torch.randint(0, 97, (1, 6))
    with torch.no_grad():
        fused = model(ids).logits
    with torch.enable_grad():
        unfused = model(ids).logits  # autograd on: the modules, no fused copy
    torch.testing.assert_close(fused, unfused.detach(), atol=1e-5, rtol=1e-5)
    attn = model.model.layers[0].self_attn
    with torch.no_grad():
        attn.k_proj.weight.mul_(2.0)  # an in-place change must reach the fused weight
        changed = model(ids).logits
        with torch.enable_grad():
            reference = model(ids).logits.detach()
    torch.testing.assert_close(changed, reference, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(changed, fused, atol=1e-3)

    class Scaled(nn.Module):  # stands in for a LoRA wrapper that replaces q_proj by name
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return 3.0 * self.inner(x)

    attn.q_proj = Scaled(attn.q_proj)
    with torch.no_grad():
        wrapped = model(ids).logits
    with torch.enable_grad():
        torch.testing.assert_close(wrapped, model(ids).logits.detach(), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(wrapped, changed, atol=1e-3)
    assert all("fused" not in name for name in model.state_dict())
    seen = []
    attn.k_proj.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    with torch.no_grad():
        model(ids)
    assert seen == [(1, 6, 16)]  # a hooked module is called, not bypassed by the fused matmul


def test_padding_is_refused_where_a_decoder_cannot_mask():
    lstm = LSTMLanguageModel(LSTMLMConfig(vocab_size=30, embed_dim=8, hidden_size=16))
    ids, mask = pad_left([[1, 2, 3], [4]], pad_token_id=0)
    with pytest.raises(ValueError, match="LSTMLanguageModel cannot decode padded prompts"):
        generate(lstm, ids, 2, attention_mask=mask)
    gpt = GPT(GPTConfig(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises(ValueError, match="GPT cannot decode padded prompts"):
        next(generate_tokens(Recompute(gpt), ids, 2, attention_mask=mask))
    with pytest.raises(ValueError, match="non-empty list of non-empty token lists"):
        pad_left([[1], []], 0)


def test_smollm2_batch_of_three_lengths_equals_each_alone(smollm2, smollm2_bpe):
    texts = ["Hi", "The capital of France is", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number"]
    prompts = [smollm2_bpe.encode(t) for t in texts]
    assert len({len(p) for p in prompts}) == 3
    ids, mask = pad_left(prompts, pad_token_id=2)
    batch = generate(smollm2, ids, 12, attention_mask=mask)
    for row, p in enumerate(prompts):
        alone = generate(smollm2, torch.tensor([p]), 12)
        assert batch[row, ids.shape[1]:].tolist() == alone[0, len(p):].tolist(), texts[row]
