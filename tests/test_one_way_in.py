"""One way in from transformers, one batch format, one set of input checks (issue 13 items 5 and 9).

- every family's ``from_hf(config, state_dict)`` takes a transformers config object or its dict;
- converters refuse the GPT-2 settings our GPT-2 does not compute, and each refused setting really
  changes HF's output (so refusing is right, and silently loading would have been wrong);
- ``encode_batch`` pads like HF tokenizers (ids and attention mask, left and right);
- DeepSeek's ``attention_mask``: a left-padded batch gives each row the logits it gets alone;
- every config reports a non-positive size with the same message, every model float ids with TypeError.
"""

from __future__ import annotations

import pytest
import torch
import transformers

from course_lib.models.bert import BertConfig, BertModel
from course_lib.models.clip import CLIPConfig, TextConfig
from course_lib.models.deepseek import DeepSeekConfig, DeepSeekForCausalLM, MLAConfig, MoEConfig
from course_lib.models.gpt import GPT, GPTConfig
from course_lib.models.linear_attention import LinearAttentionConfig, RWKVConfig
from course_lib.models.llama import LlamaConfig, LlamaForCausalLM
from course_lib.models.rnn import LSTMLMConfig
from course_lib.models.ssm import SelectiveSSMConfig
from course_lib.models.t5 import T5Config, T5Model
from course_lib.models.vit import ViTConfig
from course_lib.tokenizers.batch import pad_batch
from course_lib.transformer import TransformerConfig

pytestmark = pytest.mark.usefixtures("one_thread")

GPT_TINY = dict(vocab_size=101, n_positions=16, n_embd=32, n_layer=2, n_head=4)


def _hf_gpt(**extra):
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**GPT_TINY, **extra,
                                                                attn_implementation="eager")).eval()


def test_from_hf_takes_a_config_object_or_its_dict():
    ref = _hf_gpt()
    ids = torch.randint(0, 101, (2, 9))
    with torch.no_grad():
        a = GPT.from_hf(ref.config, ref.state_dict())(ids).logits
        b = GPT.from_hf(ref.config.to_dict(), ref.state_dict())(ids).logits
        torch.testing.assert_close(a, ref(ids).logits)
    assert torch.equal(a, b)
    assert not GPT.from_hf(ref.config, ref.state_dict()).training  # eval mode, as HF from_pretrained


@pytest.mark.parametrize("setting, value", [
    ("activation_function", "relu"),
    ("scale_attn_weights", False),
    ("scale_attn_by_inverse_layer_idx", True),
    ("n_inner", 48),
])
def test_gpt_converter_refuses_a_setting_it_does_not_compute(setting, value):
    plain, other = _hf_gpt(), _hf_gpt(**{setting: value})
    ids = torch.randint(0, 101, (2, 9))
    if setting != "n_inner":  # same weights, other numbers: loading it anyway would be silently wrong
        other.load_state_dict(plain.state_dict())
        with torch.no_grad():
            assert (other(ids).logits - plain(ids).logits).abs().max() > 1e-4  # the GPT test tolerance is 1e-5
    with pytest.raises(ValueError, match=f"GPTConfig does not implement the transformers setting\\(s\\) {setting}="):
        GPT.from_hf(other.config, other.state_dict())


def test_other_converters_refuse_unsupported_settings():
    with pytest.raises(ValueError, match="hidden_act='gelu_new'"):
        BertConfig.from_hf(transformers.BertConfig(hidden_act="gelu_new"))
    with pytest.raises(ValueError, match="T5Config does not implement the transformers setting\\(s\\) feed_forward_proj='gated-silu'"):
        T5Config.from_hf(transformers.T5Config(feed_forward_proj="gated-silu"))
    with pytest.raises(ValueError, match="attention_bias=True"):
        LlamaConfig.from_hf(transformers.LlamaConfig(attention_bias=True))
    with pytest.raises(ValueError, match="rope_type='linear'"):
        LlamaConfig.from_hf(transformers.LlamaConfig(rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                                      "rope_theta": 1e4}))
    with pytest.raises(TypeError, match="config must be a transformers config or a config.json dict"):
        GPTConfig.from_hf(["n_embd", 32])


def test_every_family_loads_through_from_hf():
    """BERT, T5, LLaMA and DeepSeek: the same call, HF's numbers."""
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (2, 7))
    bert = transformers.BertModel(transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                                                          num_attention_heads=4, intermediate_size=37)).eval()
    t5 = transformers.T5Model(transformers.T5Config(vocab_size=50, d_model=32, d_kv=8, d_ff=40, num_layers=2,
                                                    num_heads=4)).eval()
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=50, hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True)).eval()
    deepseek = transformers.DeepseekV3ForCausalLM(transformers.DeepseekV3Config(
        vocab_size=50, hidden_size=32, intermediate_size=48, moe_intermediate_size=16, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, n_routed_experts=4, num_experts_per_tok=2, n_group=1,
        topk_group=1, kv_lora_rank=8, q_lora_rank=None, qk_rope_head_dim=4, qk_nope_head_dim=8, v_head_dim=8,
        first_k_dense_replace=1, tie_word_embeddings=True, attn_implementation="eager")).eval()
    with torch.no_grad():
        torch.testing.assert_close(BertModel.from_hf(bert.config, bert.state_dict())(ids).last_hidden_state,
                                   bert(ids).last_hidden_state)
        torch.testing.assert_close(T5Model.from_hf(t5.config, t5.state_dict())(ids, ids).last_hidden_state,
                                   t5(input_ids=ids, decoder_input_ids=ids).last_hidden_state)
        ours = LlamaForCausalLM.from_hf(llama.config, llama.state_dict())
        assert ours.lm_head is None  # the tied copy was checked and dropped
        torch.testing.assert_close(ours(ids).logits, llama(ids).logits, atol=1e-5, rtol=1e-5)
        ours = DeepSeekForCausalLM.from_hf(deepseek.config, deepseek.state_dict())
        assert ours.lm_head.weight is ours.model.embed_tokens.weight
        torch.testing.assert_close(ours(ids).logits, deepseek(ids).logits, atol=1e-5, rtol=1e-5)


def test_pad_batch_left_and_right():
    batch = pad_batch([[5, 6, 7], [8]], pad_id=0, padding_side="left")
    assert batch.input_ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    batch = pad_batch([[5, 6, 7], [8]], pad_id=0, padding_side="right")
    assert batch.input_ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch.attention_mask.dtype == batch.input_ids.dtype == torch.long
    with pytest.raises(ValueError, match="padding_side must be one of"):
        pad_batch([[1]], 0, "middle")


def test_smollm2_encode_batch_equals_hf_tokenizer_padding(smollm2_bpe, hf_smollm2_tokenizer):
    texts = ["Hello world", "The quick brown fox jumps over the lazy dog.", "你好"]
    for side in ("left", "right"):
        ours = smollm2_bpe.encode_batch(texts, padding_side=side)
        hf_smollm2_tokenizer.padding_side = side
        ref = hf_smollm2_tokenizer(texts, padding=True, return_tensors="pt")
        assert torch.equal(ours.input_ids, ref["input_ids"]), side
        assert torch.equal(ours.attention_mask, ref["attention_mask"]), side
    with pytest.raises(TypeError, match="texts must be a non-empty list of str"):
        smollm2_bpe.encode_batch("one text")


def test_minilm_encode_batch_equals_hf_tokenizer():
    from transformers import BertTokenizer

    from course_lib import weights
    from course_lib.tokenizers.wordpiece import WordPieceTokenizer

    path = weights.minilm_path()
    ours, ref = WordPieceTokenizer.from_pretrained(path), BertTokenizer.from_pretrained(str(path))
    texts = ["A short one.", "BERT pads on the right, and the mask says which tokens are real.", "中文也可以"]
    for side in ("left", "right"):
        ref.padding_side = side
        want = ref(texts, padding=True, return_tensors="pt")
        got = ours.encode_batch(texts, padding_side=side)
        assert torch.equal(got.input_ids, want["input_ids"]) and torch.equal(got.attention_mask, want["attention_mask"])
    want = ref(texts, padding=True, add_special_tokens=False, return_tensors="pt")
    got = ours.encode_batch(texts, add_special_tokens=False)
    assert torch.equal(got.input_ids, want["input_ids"])
    long_text = " ".join(["word"] * 600)
    assert len(ours.encode(long_text).input_ids) == 512
    assert len(ours.encode(long_text, truncation=False).input_ids) == 602 == len(ref(long_text)["input_ids"])


def test_deepseek_left_padded_batch_equals_each_row_alone():
    torch.manual_seed(0)
    model = DeepSeekForCausalLM(DeepSeekConfig(n_routed_experts=4, n_group=2, topk_group=1,
                                               num_experts_per_tok=2)).eval()
    rows = [torch.randint(0, 256, (1, 9)), torch.randint(0, 256, (1, 5))]
    ids = torch.zeros(2, 9, dtype=torch.long)
    mask = torch.zeros(2, 9, dtype=torch.long)
    ids[0], mask[0] = rows[0][0], 1
    ids[1, 4:], mask[1, 4:] = rows[1][0], 1
    with torch.no_grad():
        for mode in ("naive", "absorbed"):
            batched = model(ids, mode=mode, attention_mask=mask).logits
            torch.testing.assert_close(batched[0], model(rows[0], mode=mode).logits[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(batched[1, 4:], model(rows[1], mode=mode).logits[0], atol=1e-5, rtol=1e-5)
            # and one decoding step with the cache continues both rows correctly
            cache = model.new_cache(2, 10)
            model(ids, cache, mode, attention_mask=mask)
            nxt = torch.tensor([[7], [7]])
            step = model(nxt, cache, mode, attention_mask=torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1))
            alone = model(torch.cat([rows[1], nxt[:1]], 1), mode=mode).logits[0, -1]
            torch.testing.assert_close(step.logits[1, -1], alone, atol=1e-5, rtol=1e-5)
        # without the mask the padded row's logits differ: the mask is what makes them equal
        assert (model(ids).logits[1, 4:] - model(rows[1]).logits[0]).abs().max() > 1e-3


def test_gpt_left_padded_batch_equals_each_row_alone():
    model = GPT.from_hf(_hf_gpt().config, _hf_gpt().state_dict())
    rows = [torch.randint(0, 101, (1, 9)), torch.randint(0, 101, (1, 4))]
    ids, mask = torch.zeros(2, 9, dtype=torch.long), torch.zeros(2, 9, dtype=torch.long)
    ids[0], mask[0] = rows[0][0], 1
    ids[1, 5:], mask[1, 5:] = rows[1][0], 1
    with torch.no_grad():
        for need_weights in (False, True):
            batched = model(ids, need_weights, attention_mask=mask).logits
            torch.testing.assert_close(batched[0], model(rows[0]).logits[0])
            torch.testing.assert_close(batched[1, 5:], model(rows[1]).logits[0])
        assert (model(ids).logits[1, 5:] - model(rows[1]).logits[0]).abs().max() > 1e-4


@pytest.mark.parametrize("make", [
    lambda: GPTConfig(n_layer=0), lambda: BertConfig(num_hidden_layers=0), lambda: T5Config(num_layers=0),
    lambda: LlamaConfig(num_hidden_layers=0), lambda: DeepSeekConfig(num_hidden_layers=0),
    lambda: TransformerConfig(13, 13, num_encoder_layers=0), lambda: MLAConfig(32, 4, 8, 8, 4, 0),
    lambda: MoEConfig(32, 16, 4, 0), lambda: LSTMLMConfig(num_layers=0), lambda: SelectiveSSMConfig(state_size=0),
    lambda: LinearAttentionConfig(n_heads=0), lambda: RWKVConfig(hidden_size=0), lambda: ViTConfig(patch_size=0),
    lambda: TextConfig(num_hidden_layers=0), lambda: CLIPConfig(projection_dim=0),
], ids=["gpt", "bert", "t5", "llama", "deepseek", "transformer", "mla", "moe", "lstm", "mamba", "linear_attention",
        "rwkv", "vit", "clip_text", "clip"])
def test_every_config_reports_a_non_positive_size_the_same_way(make):
    with pytest.raises(ValueError, match=r"^\w+Config\.\w+ must be a positive int, got 0$"):
        make()


@pytest.mark.parametrize("model", [
    lambda: GPT(GPTConfig(**GPT_TINY)), lambda: LlamaForCausalLM(LlamaConfig(num_hidden_layers=1, vocab_size=64)),
    lambda: DeepSeekForCausalLM(DeepSeekConfig()), lambda: BertModel(BertConfig(num_hidden_layers=1)),
], ids=["gpt", "llama", "deepseek", "bert"])
def test_float_token_ids_are_a_type_error_everywhere(model):
    with pytest.raises(TypeError, match="input_ids must be an integer tensor"):
        model()(torch.zeros(1, 3))
