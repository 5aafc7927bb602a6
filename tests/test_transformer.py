"""course_lib.transformer and course_lib.seq2seq against torch.nn.Transformer and F.cross_entropy.

Tolerance: ``torch.testing.assert_close`` fp32 defaults (rtol 1.3e-6, atol 1e-5): the same
operations in fp32, only the order of sums differs; through two layers per stack the largest
difference measured is ~1e-6.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from course_lib import seq2seq
from course_lib.attention import causal_mask, padding_mask
from course_lib.tasks import reversal
from course_lib.transformer import (
    PositionalEncoding,
    TokenEmbedding,
    Transformer,
    TransformerConfig,
    sinusoidal_table,
    state_from_torch_transformer,
)

D, H, FF, LAYERS = 32, 4, 64, 2
SRC = torch.tensor([[5, 6, 7, 8, 9, 0, 0], [5, 6, 7, 8, 9, 10, 4]])  # pad id 0
TGT = torch.tensor([[1, 4, 5, 0, 0], [1, 4, 5, 6, 7]])


def _pair(norm_first: bool):
    """Our Transformer and a torch.nn.Transformer of the same sizes with the same weights, dropout off."""
    with warnings.catch_warnings():  # torch notes that pre-norm stacks skip its nested-tensor fast path
        warnings.filterwarnings("ignore", message="enable_nested_tensor is True")
        ref = torch.nn.Transformer(D, H, LAYERS, LAYERS, FF, dropout=0.0, batch_first=True, norm_first=norm_first)
    with torch.no_grad():  # torch zero-inits the attention biases and sets LayerNorm to (1, 0): randomise
        for name, p in ref.named_parameters():
            if p.dim() == 1:
                p.normal_(mean=1.0 if "norm" in name and name.endswith("weight") else 0.0, std=0.2)
    cfg = TransformerConfig(11, 13, d_model=D, num_heads=H, num_encoder_layers=LAYERS, num_decoder_layers=LAYERS,
                            d_ff=FF, dropout=0.0, norm_first=norm_first, final_norm=True)  # torch always has it
    ours = Transformer(cfg).eval()
    result = ours.load_state_dict(state_from_torch_transformer(ref.state_dict()), strict=False)
    assert not result.unexpected_keys
    assert sorted(result.missing_keys) == ["generator.bias", "generator.weight", "src_embed.embedding.weight",
                                           "tgt_embed.embedding.weight"]  # nn.Transformer has none of these
    return ours, ref.eval()


def _torch_masks():
    """torch.nn.Transformer's convention: bool True = *blocked* (the opposite of ours)."""
    return dict(tgt_mask=~causal_mask(TGT.shape[1]), src_key_padding_mask=SRC == 0,
                tgt_key_padding_mask=TGT == 0, memory_key_padding_mask=SRC == 0)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_encoder_decoder_stacks_match_torch(norm_first):
    ours, ref = _pair(norm_first)
    src, tgt = torch.randn(2, 7, D), torch.randn(2, 5, D)
    # grad enabled on purpose: torch's eval "fast path" (nested tensors) would zero padded positions
    expected = ref(src, tgt, **_torch_masks())
    memory, _ = ours.encoder(src, padding_mask(SRC, 0))  # self-attention, padded
    torch.testing.assert_close(memory, ref.encoder(src, src_key_padding_mask=SRC == 0))
    out, _, _ = ours.decoder(tgt, memory, padding_mask(TGT, 0) & causal_mask(5), padding_mask(SRC, 0))
    torch.testing.assert_close(out, expected)  # causal self-attention + cross-attention


def test_full_model_on_token_ids_matches_torch():
    """Token ids end to end: our embeddings·√d + PE + generator around torch's encoder–decoder core."""
    ours, ref = _pair(norm_first=False)
    src_x = ours.positional_encoding(ours.src_embed(SRC))
    tgt_x = ours.positional_encoding(ours.tgt_embed(TGT))
    expected = ours.generator(ref(src_x, tgt_x, **_torch_masks()))
    out = ours(SRC, TGT, output_attentions=True)
    torch.testing.assert_close(out.logits, expected)
    assert [a.shape for a in out.encoder_attentions] == [(2, H, 7, 7)] * LAYERS
    assert [a.shape for a in out.decoder_attentions] == [(2, H, 5, 5)] * LAYERS
    assert [a.shape for a in out.cross_attentions] == [(2, H, 5, 7)] * LAYERS
    assert out.cross_attentions[0][0, :, :, 5:].abs().max() == 0  # padded source keys
    assert out.decoder_attentions[0][1].triu(1).abs().max() == 0  # causal
    assert ours(SRC, TGT).cross_attentions is None


def test_decoder_is_causal():
    ours, _ = _pair(norm_first=False)
    changed = TGT.clone()
    changed[1, 3:] = torch.tensor([9, 10])
    a, b = ours(SRC, TGT).logits, ours(SRC, changed).logits
    torch.testing.assert_close(a[1, :3], b[1, :3])
    assert (a[1, 3:] - b[1, 3:]).abs().max() > 1e-3


def test_post_norm_has_no_final_norm_by_default():
    cfg = TransformerConfig(5, 5, d_model=8, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, d_ff=16)
    assert Transformer(cfg).encoder.norm is None
    assert Transformer(TransformerConfig(**{**cfg.__dict__, "norm_first": True})).decoder.norm is not None


def test_sinusoidal_table_is_the_paper_formula():
    table = sinusoidal_table(50, 16)
    expected = torch.tensor([[math.sin(p / 10000 ** (i / 16)) if i % 2 == 0 else math.cos(p / 10000 ** ((i - 1) / 16))
                              for i in range(16)] for p in range(50)])
    torch.testing.assert_close(table, expected, rtol=0, atol=2e-5)  # fp32 sin/cos of arguments up to 49


def test_embedding_scaled_by_sqrt_d_model():
    emb = TokenEmbedding(10, 16)
    tokens = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(emb(tokens), emb.embedding.weight[tokens] * 4.0)


def test_label_smoothing_matches_torch_cross_entropy():
    logits, target = torch.randn(3, 6, 13), torch.randint(0, 13, (3, 6))
    target[0, 4:] = seq2seq.PAD
    expected = F.cross_entropy(logits.reshape(-1, 13), target.reshape(-1), label_smoothing=0.1, ignore_index=seq2seq.PAD)
    torch.testing.assert_close(seq2seq.label_smoothing_loss(logits, target, 0.1), expected)


def test_noam_schedule():
    lr = seq2seq.noam_lambda(d_model=512, warmup=4000)
    values = [lr(s) for s in range(20000)]
    assert max(range(20000), key=values.__getitem__) == 3999  # peak at step = warmup (1-based)
    assert values[3999] == pytest.approx(512 ** -0.5 * 4000 ** -0.5)
    assert values[15999] == pytest.approx(512 ** -0.5 * 16000 ** -0.5)


def test_reversal_task_and_held_out_split():
    task = reversal.ReversalTask(min_len=3, max_len=8)
    src, tgt = task.sample(500, torch.Generator().manual_seed(0))
    assert src.shape == (500, 8) and tgt.shape == (500, 10)
    for s, t in zip(src.tolist()[:50], seq2seq.strip_special(tgt)[:50]):
        assert t == [x for x in s if x != seq2seq.PAD][::-1]
    held_src, _ = task.sample(500, torch.Generator().manual_seed(0), held_out=True)
    train_rows = {tuple(r) for r in src.tolist()}
    assert not train_rows & {tuple(r) for r in held_src.tolist()}


def test_beam_size_one_is_greedy_and_beams_end_with_eos():
    ours, _ = _pair(norm_first=False)
    src = torch.randint(3, 11, (4, 6))
    greedy = seq2seq.greedy_decode(ours, src, max_len=8, bos_id=1, eos_id=2)
    beam = seq2seq.beam_search(ours, src, max_len=8, beam_size=1, bos_id=1, eos_id=2)
    torch.testing.assert_close(beam, greedy, rtol=0, atol=0)
    wide = seq2seq.beam_search(ours, src, max_len=8, beam_size=5, bos_id=1, eos_id=2)
    assert wide.shape[0] == 4 and (wide[:, 0] == 1).all()


def test_bad_input():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        TransformerConfig(10, 10, d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="num_encoder_layers must be a positive int"):
        TransformerConfig(10, 10, num_encoder_layers=0)
    with pytest.raises(ValueError, match="exceeds the positional-encoding table"):
        PositionalEncoding(16, max_len=8)(torch.randn(1, 9, 16))
    with pytest.raises(ValueError, match="even d_model"):
        sinusoidal_table(10, 7)
    with pytest.raises(TypeError, match="TransformerConfig"):
        Transformer({"d_model": 8})
    ours, _ = _pair(norm_first=False)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 11\)"):
        ours(SRC + 20, TGT)
    with pytest.raises(ValueError, match="integer ids"):
        ours.src_embed(SRC.float())
    with pytest.raises(ValueError, match="same B"):
        ours(SRC, TGT[:1])
    with pytest.raises(ValueError, match="not a torch.nn.Transformer state dict"):
        state_from_torch_transformer({})
    with pytest.raises(ValueError, match="smoothing must be in"):
        seq2seq.label_smoothing_loss(torch.randn(2, 5), torch.zeros(2, dtype=torch.long), smoothing=1.0)
    with pytest.raises(ValueError, match="beam_size must be a positive int"):
        seq2seq.beam_search(ours, SRC, max_len=4, beam_size=0)
    with pytest.raises(ValueError, match="min_len <= max_len"):
        reversal.ReversalTask(min_len=5, max_len=3)


def test_reversal_small_config_reaches_95_percent_exact_match():
    """The chapter's small run (fixed seed): >= 95 % exact match on held-out strings."""
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(reversal.VOCAB_SIZE, reversal.VOCAB_SIZE, max_len=64, **reversal.SMALL_MODEL))
    task = reversal.ReversalTask(**reversal.SMALL_TASK)
    reversal.fit_reversal(model, task, seed=0, **{**reversal.SMALL_TRAINING, "eval_every": 0})
    held_src, held_tgt = task.sample(512, torch.Generator().manual_seed(123), held_out=True)
    assert seq2seq.exact_match(model, held_src, held_tgt) >= 0.95
    assert seq2seq.exact_match(model, held_src[:64], held_tgt[:64], beam_size=3) >= 0.9


def test_class_hierarchy_figure_follows_the_code(tmp_path):
    from course_lib.viz import transformer_figures

    cfg = TransformerConfig(5, 5, d_model=8, num_heads=2, num_encoder_layers=3, num_decoder_layers=2, d_ff=8)
    edges, leaves = transformer_figures.class_hierarchy(Transformer(cfg))
    assert ("encoder", "Encoder") in edges["Transformer"] and ("decoder", "Decoder") in edges["Transformer"]
    assert edges["Encoder"] == [("layers ×3", "EncoderLayer")]
    assert edges["Decoder"] == [("layers ×2", "DecoderLayer")]
    assert ("self_attn, cross_attn", "MultiHeadAttention") in edges["DecoderLayer"]
    assert ("calls", "scaled_dot_product_attention()") in edges["MultiHeadAttention"]
    assert leaves["DecoderLayer"] == ["Dropout", "LayerNorm ×3"]
    for name, draw in transformer_figures.FIGURES.items():
        assert draw(tmp_path / name).stat().st_size > 10_000
