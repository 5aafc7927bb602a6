"""LLaMA (course_lib.models.llama) against transformers' LlamaForCausalLM.

Real weights: SmolLM2-135M-Instruct from the same GGUF file, loaded by both sides.
Tolerance: fp32, atol = rtol = 1e-4 on logits of magnitude ~30. Both sides run the same fp32
operations; only the order of floating-point accumulation inside kernels can differ (measured
max error 0 to ~5e-5 after 30 layers), so 1e-4 catches any real difference (a wrong RoPE pairing,
a missing norm or a mis-mapped weight changes logits by > 1).
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from course_lib import weights
from course_lib.models.llama import KVCache, LlamaConfig, LlamaForCausalLM

TOL = dict(atol=1e-4, rtol=1e-4)
PROMPTS = [
    "The capital of France is",
    "大语言模型是如何生成文本的？请简单解释。",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n",
    "春眠不觉晓，处处闻啼鸟。🤗 Emoji and 中文 mixed.",
]


def _ids(smollm2_bpe, text):
    return torch.tensor([smollm2_bpe.encode(text)])


def test_config_read_from_checkpoint_matches_hf(hf_smollm2):
    ours, ref = LlamaConfig.from_hf(weights.smollm2_config()), hf_smollm2.config
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "head_dim", "tie_word_embeddings"):
        assert getattr(ours, name) == getattr(ref, name), name
    assert ours.rms_norm_eps == pytest.approx(ref.rms_norm_eps, rel=1e-6)  # HF keeps the f32 9.99999975e-06
    assert ours.rope_theta == ref.rope_parameters["rope_theta"] == 100000.0
    assert (ours.num_attention_heads, ours.num_key_value_heads, ours.num_hidden_layers) == (9, 3, 30)


def test_parameter_names_are_hf_names(smollm2, hf_smollm2):
    ours = set(smollm2.state_dict())
    ref = set(hf_smollm2.state_dict()) - {"lm_head.weight"}  # tied: HF lists it, we do not keep a copy
    assert ours == ref


@pytest.mark.parametrize("text", PROMPTS)
def test_logits_equal_hf(smollm2, hf_smollm2, smollm2_bpe, text):
    ids = _ids(smollm2_bpe, text)
    with torch.no_grad():
        ours, ref = smollm2(ids).logits, hf_smollm2(ids).logits
    assert_close(ours, ref, **TOL)


def test_logits_equal_hf_long_prompt(smollm2, hf_smollm2, smollm2_bpe):
    from course_lib.data import python_docs_text

    ids = _ids(smollm2_bpe, python_docs_text(1800))
    assert ids.shape[1] > 300
    with torch.no_grad():
        ours, ref = smollm2(ids).logits, hf_smollm2(ids).logits
    assert_close(ours, ref, **TOL)


def test_attentions_equal_hf_eager(smollm2, hf_smollm2, smollm2_bpe):
    ids = _ids(smollm2_bpe, PROMPTS[1])
    hf_smollm2.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            ref = hf_smollm2(ids, output_attentions=True).attentions
    finally:
        hf_smollm2.set_attn_implementation("sdpa")
    with torch.no_grad():
        out = smollm2(ids, output_attentions=True)
    assert len(out.attentions) == 30
    for ours, theirs in zip(out.attentions, ref):
        assert ours.shape == (1, 9, ids.shape[1], ids.shape[1])
        assert_close(ours, theirs, **TOL)


def test_from_scratch_and_fused_attention_paths_agree(smollm2, smollm2_bpe):
    ids = _ids(smollm2_bpe, PROMPTS[2])
    with torch.no_grad():
        fused = smollm2(ids)
        scratch = smollm2(ids, output_attentions=True)
    assert fused.attentions is None
    assert_close(scratch.logits, fused.logits, **TOL)
    weights = scratch.attentions[0]
    assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    assert torch.all(weights.triu(diagonal=1) == 0)  # causal: nothing attends to the future


def test_kv_cache_decoding_equals_full_recompute(smollm2, smollm2_bpe):
    ids = _ids(smollm2_bpe, PROMPTS[0] + " Paris, and the capital of Germany is Berlin.")
    T = ids.shape[1]
    with torch.no_grad():
        full = smollm2(ids).logits
        cache = smollm2.new_cache(1, T)
        pieces = [smollm2(ids[:, :5], cache=cache).logits]      # prefill
        pieces.append(smollm2(ids[:, 5:8], cache=cache).logits)  # a chunk of 3 with a causal mask over the cache
        pieces += [smollm2(ids[:, t:t + 1], cache=cache).logits for t in range(8, T)]  # one token per step
        for output_attentions in (False, True):
            c2 = smollm2.new_cache(1, T)
            smollm2(ids[:, :-1], cache=c2, output_attentions=output_attentions)
            last = smollm2(ids[:, -1:], cache=c2, output_attentions=output_attentions).logits
            assert_close(last, full[:, -1:], **TOL)
    assert cache.length == T
    assert_close(torch.cat(pieces, dim=1), full, **TOL)


def test_left_padded_batch_equals_single_prompts_and_hf(smollm2, hf_smollm2, smollm2_bpe):
    prompts = [smollm2_bpe.encode(PROMPTS[0]), smollm2_bpe.encode(PROMPTS[1])]
    T = max(map(len, prompts))
    ids = torch.tensor([[2] * (T - len(p)) + p for p in prompts])  # left padding with <|im_end|>
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        batch = smollm2(ids, attention_mask=mask).logits
        for row, p in enumerate(prompts):
            single = smollm2(torch.tensor([p])).logits
            assert_close(batch[row, T - len(p):], single[0], **TOL)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ref = hf_smollm2(ids, attention_mask=mask, position_ids=positions).logits
    real = mask.bool()
    assert_close(batch[real], ref[real], **TOL)


@pytest.mark.parametrize("kv_heads,tied", [(2, True), (4, False), (1, True)])
def test_random_tiny_config_equals_hf(kv_heads, tied):
    """Random HF LlamaForCausalLM (GQA / MHA with untied lm_head / MQA) through ``from_hf``: its config and weights."""
    import transformers

    ref_config = transformers.LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=kv_heads, head_dim=16,
                                          max_position_embeddings=64, rope_theta=500.0, rms_norm_eps=1e-6,
                                          tie_word_embeddings=tied)
    ref = transformers.LlamaForCausalLM(ref_config).eval()
    ours = LlamaForCausalLM.from_hf(ref.config, ref.state_dict())
    assert ours.config.rope_theta == 500.0 and (ours.lm_head is None) == tied
    ids = torch.randint(0, 97, (3, 20))
    with torch.no_grad():
        assert_close(ours(ids).logits, ref(ids).logits, atol=1e-5, rtol=1e-5)  # tiny smollm2: 1e-5 suffices


def test_kv_cache_size_gqa_vs_mha():
    gqa = KVCache(LlamaConfig(), batch_size=1, max_len=1024)
    mha = KVCache(LlamaConfig(num_key_value_heads=9), batch_size=1, max_len=1024)
    assert gqa.nbytes() == 2 * 30 * 3 * 1024 * 64 * 4  # k and v, layers, kv heads, positions, head_dim, fp32
    assert mha.nbytes() == 3 * gqa.nbytes()


def test_bad_input_raises_clear_errors(smollm2):
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 49152\)"):
        smollm2(torch.tensor([[1, 49152]]))
    with pytest.raises(ValueError, match="input_ids must lie in"):
        smollm2(torch.tensor([[-1, 5]]))
    with pytest.raises(TypeError, match="integer tensor"):
        smollm2(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        smollm2(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="exceeds the context window of 8192"):
        smollm2(torch.zeros(1, 8193, dtype=torch.long))
    with pytest.raises(ValueError, match="cache for batch 1"):
        smollm2(torch.zeros(1, 5, dtype=torch.long), cache=smollm2.new_cache(1, 4))
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        smollm2(torch.zeros(1, 5, dtype=torch.long), attention_mask=torch.ones(1, 4))
    with pytest.raises(ValueError, match="multiple of"):
        LlamaConfig(num_attention_heads=9, num_key_value_heads=2)
    with pytest.raises(ValueError, match="head_dim must be even"):
        LlamaConfig(head_dim=63)
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        LlamaConfig(hidden_size=0)
    with pytest.raises(ValueError, match="exceeds the context window"):
        KVCache(LlamaConfig(), 1, 10_000)
