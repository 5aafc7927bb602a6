"""Our T5 vs HF ``T5Model`` / ``T5ForConditionalGeneration`` with the same random tiny-config weights
(names identical; the tied copies in ``t5.HF_TIED`` are checked and dropped).

Tolerance: ``assert_close``'s fp32 default (rtol 1.3e-6, atol 1e-5): same operations, fp32 rounding
only (HF masks with the dtype's minimum where we use -inf: identical after softmax). 1e-4 for the
fused-kernel path, which sums in another order.
"""

from __future__ import annotations

import pytest
import torch

from course_lib.models.t5 import (
    HF_TIED,
    T5Config,
    T5ForConditionalGeneration,
    T5Model,
    relative_position_bucket,
    shift_right,
)

TINY = dict(vocab_size=97, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=3, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=20)


def _randomise(model):
    with torch.no_grad():  # HF starts norms at 1: randomise so a swapped norm would show
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def _hf(cls, **extra):
    from transformers import T5Config as HFT5Config

    torch.manual_seed(0)
    return _randomise(cls(HFT5Config(**TINY, **extra, attn_implementation="eager"))).eval()


def _inputs():
    ids = torch.randint(1, 97, (2, 30))  # longer than max_distance: the log buckets and the clamp are used
    mask = torch.ones_like(ids)
    mask[1, 21:] = 0
    dec = torch.randint(1, 97, (2, 25))
    return ids, mask, dec


@pytest.mark.parametrize("ff", ["relu", "gated-gelu"])
def test_t5_model_equals_hf(ff):
    from transformers import T5Model as HFT5Model

    ref = _hf(HFT5Model, feed_forward_proj=ff)
    ours = T5Model.from_hf(ref.config, ref.state_dict())
    ids, mask, dec = _inputs()
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, output_attentions=True)
        got = ours(ids, dec, attention_mask=mask, output_attentions=True)
    torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state)
    real = mask.bool()
    torch.testing.assert_close(got.encoder_last_hidden_state[real], want.encoder_last_hidden_state[real])
    for name in ("encoder_attentions", "decoder_attentions", "cross_attentions"):
        assert len(getattr(got, name)) == len(getattr(want, name)) > 0
        for a, b in zip(getattr(got, name), getattr(want, name)):
            if name == "encoder_attentions":
                a, b = a.transpose(1, 2)[real], b.transpose(1, 2)[real]  # queries at real tokens
            torch.testing.assert_close(a, b)


def test_conditional_generation_logits_loss_and_generate_equal_hf():
    from transformers import T5ForConditionalGeneration as HFT5

    ref = _hf(HFT5, decoder_start_token_id=0)
    ours = T5ForConditionalGeneration.from_hf(ref.config, ref.state_dict())
    ids, mask, _ = _inputs()
    labels = torch.randint(1, 97, (2, 9))
    labels[0, 7:] = -100
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, labels=labels)
        got = ours(ids, shift_right(labels), attention_mask=mask)
    torch.testing.assert_close(got.logits, want.logits)
    loss = torch.nn.functional.cross_entropy(got.logits.reshape(-1, 97), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(loss, want.loss)
    hf_out = ref.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, num_beams=1,
                          min_new_tokens=6, eos_token_id=None,
                          use_cache=False)  # HF sizes its cache by the encoder depth (2 < 3 decoder layers)
    assert ours.generate(ids, 6, attention_mask=mask).tolist() == hf_out.tolist()


def test_cached_generate_equals_hf_with_its_cache():
    """HF's ``EncoderDecoderCache`` (self-attention cache + cross-attention k/v computed once) vs ours.

    Encoder and decoder depths are equal here: HF sizes its cache by the encoder depth (see above).
    """
    from transformers import T5Config as HFT5Config
    from transformers import T5ForConditionalGeneration as HFT5

    torch.manual_seed(0)
    config = HFT5Config(**{**TINY, "num_decoder_layers": 2}, decoder_start_token_id=0, attn_implementation="eager")
    ref = _randomise(HFT5(config)).eval()
    with torch.no_grad():  # HF's small init repeats one token; N(0, 0.5) weights make every step's position count
        for name, p in ref.named_parameters():
            if "layer_norm" not in name:
                p.normal_(0, 0.5)
    ours = T5ForConditionalGeneration.from_hf(ref.config, ref.state_dict())
    ids, mask, _ = _inputs()
    hf_out = ref.generate(input_ids=ids, attention_mask=mask, max_new_tokens=24, do_sample=False, num_beams=1,
                          min_new_tokens=24, eos_token_id=None, use_cache=True)  # 24 steps pass max_distance 20
    assert len(set(hf_out[1].tolist())) > 8  # not one repeated token: a wrong step position would show
    assert ours.generate(ids, 24, attention_mask=mask).tolist() == hf_out.tolist()


def test_cached_decode_step_equals_full_decoder_at_every_step():
    """Prefill 3 decoder tokens, then one a step. atol = rtol = 1e-5: one query against the cached keys is
    another kernel call than the full (T × T) one, so fp32 sums run in another order."""
    model = _randomise(T5ForConditionalGeneration(T5Config(**TINY))).eval()
    ids, mask, dec = _inputs()
    decoder = model.as_decoder(ids, mask)
    with torch.no_grad():
        full = model(ids, dec, attention_mask=mask).logits  # (B, T_dec, V)
        cache = decoder.new_cache(2, 25)
        logits, cache = decoder.decode_step(dec[:, :3], cache)
        torch.testing.assert_close(logits, full[:, 2], atol=1e-5, rtol=1e-5)
        for t in range(3, 25):  # 25 > max_distance 20: the step's bias row covers the log buckets too
            logits, cache = decoder.decode_step(dec[:, t:t + 1], cache)
            torch.testing.assert_close(logits, full[:, t], atol=1e-5, rtol=1e-5)
    assert cache.length == 25 and cache.keys.shape == (3, 2, 4, 25, 8)  # (decoder layers, B, H, max_len, d_kv)
    with pytest.raises(ValueError, match="batch_size 1 differs from the encoded batch 2"):
        decoder.new_cache(1, 4)
    with pytest.raises(ValueError, match="cache for batch 2 × 2 positions cannot take 2 × 3"):
        decoder.decode_step(dec[:, :3], decoder.new_cache(2, 2))


def test_fast_path_equals_explicit_attention():
    model = _randomise(T5ForConditionalGeneration(T5Config(**TINY))).eval()
    ids, mask, dec = _inputs()
    with torch.no_grad():
        fast = model(ids, dec, attention_mask=mask).logits
        slow = model(ids, dec, attention_mask=mask, output_attentions=True).logits
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-4)


def test_relative_position_bucket_equals_hf():
    from transformers.models.t5.modeling_t5 import T5Attention

    rel = torch.arange(-300, 300)[None, :]
    for bidirectional in (True, False):
        for n, d in ((32, 128), (8, 20)):
            want = T5Attention._relative_position_bucket(rel, bidirectional, n, d)
            assert torch.equal(relative_position_bucket(rel, bidirectional, n, d), want)
    b = relative_position_bucket(torch.tensor([-200, -8, -1, 0, 1, 8, 200]), True, 32, 128)
    assert b.tolist() == [15, 8, 1, 0, 17, 24, 31]


def test_embeddings_are_shared():
    model = T5ForConditionalGeneration(T5Config(**TINY))
    assert model.encoder.shared[0] is model.shared and model.decoder.shared[0] is model.shared
    names = [n for n, _ in model.named_parameters()]
    assert "shared.weight" in names and not any(n in names for n in HF_TIED)
    only_first = [n for n in names if "relative_attention_bias" in n]
    assert only_first == ["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                          "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]


def test_bad_input():
    model = T5Model(T5Config(**TINY))
    ids = torch.randint(0, 97, (2, 5))
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 97\)"):
        model(torch.tensor([[3, 97]]), ids[:1])
    with pytest.raises(ValueError, match=r"decoder_input_ids must lie in \[0, 97\)"):
        model(ids, torch.tensor([[-1, 3], [2, 2]]))
    with pytest.raises(TypeError, match="decoder_input_ids must be an integer tensor"):
        model(ids, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="same batch size"):
        model(ids, ids[:1])
    with pytest.raises(ValueError, match="attention mask for input_ids must have shape"):
        model(ids, ids, attention_mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match="feed_forward_proj"):
        T5Config(feed_forward_proj="gated-silu")
    sd = T5Model(T5Config(**TINY)).state_dict()
    sd["lm_head.weight"] = torch.zeros(97, 32)
    with pytest.raises(ValueError, match="lm_head.weight differs from shared.weight"):
        T5Model.from_hf(TINY, sd)


def test_attention_widget_reads_our_outputs():
    from course_lib.viz.attention import collect_attentions

    model = T5Model(T5Config(**TINY)).eval()
    ids, _, dec = _inputs()
    kinds = collect_attentions(model, ids[:1, :6], dec[:1, :4], tokens=list("abcd"), key_tokens=list("uvwxyz"))
    assert set(kinds) == {"encoder self", "decoder self", "cross"}
    assert kinds["cross"][0][0].shape == (1, 4, 4, 6)  # (B, H, T_dec, T_enc)
