"""Encoder–decoder and prefix decoders through ``generation``: the seq2seq Transformer and the VLM captioner.

``seq2seq.greedy_decode`` / ``beam_search`` and ``PrefixVLM.generate`` used to carry their own loops;
they now run on decoder adapters (``seq2seq.as_decoder``, ``PrefixVLM.as_decoder``). The old loops
are kept below, verbatim, as references: outputs are compared token for token (ids: exact).
"""

from __future__ import annotations

import pytest
import torch

from course_lib import seq2seq
from course_lib.generation import Decoder, generate
from course_lib.transformer import Transformer, TransformerConfig

pytestmark = pytest.mark.usefixtures("one_thread")

PAD, BOS, EOS = seq2seq.PAD, seq2seq.BOS, seq2seq.EOS


@torch.no_grad()
def old_greedy_decode(model, src, max_len, bos_id=BOS, eos_id=EOS):
    """``seq2seq.greedy_decode`` before the decoding interface (2026-12-01)."""
    memory, src_mask = model.encode(src)[0], model.src_mask(src)
    seqs = torch.full((src.shape[0], 1), bos_id, device=src.device)
    finished = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        logits, _, _ = model.decode(seqs, memory, src_mask)  # (B, t, V)
        next_token = logits[:, -1].argmax(-1).masked_fill(finished, model.config.pad_id)  # (B,)
        seqs = torch.cat([seqs, next_token[:, None]], dim=1)
        finished |= next_token == eos_id
        if finished.all():
            break
    return seqs


@torch.no_grad()
def old_beam_search(model, src, max_len, beam_size=4, length_penalty=0.6, bos_id=BOS, eos_id=EOS):
    """``seq2seq.beam_search`` before the decoding interface (2026-12-01)."""
    memory, src_mask = model.encode(src)[0], model.src_mask(src)
    b, k, pad = src.shape[0], beam_size, model.config.pad_id
    memory = memory.repeat_interleave(k, dim=0)  # (B·K, S, d_model)
    src_mask = src_mask.repeat_interleave(k, dim=0)
    seqs = torch.full((b * k, 1), bos_id, device=src.device)
    scores = torch.full((b, k), float("-inf"), device=src.device)
    scores[:, 0] = 0.0
    finished = torch.zeros(b * k, dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        logits, _, _ = model.decode(seqs, memory, src_mask)
        log_probs = torch.log_softmax(logits[:, -1].float(), dim=-1)  # (B·K, V)
        log_probs[finished] = float("-inf")
        log_probs[finished, pad] = 0.0
        vocab = log_probs.shape[-1]
        candidates = (scores.view(-1, 1) + log_probs).view(b, k * vocab)  # (B, K·V)
        scores, index = candidates.topk(k, dim=-1)  # (B, K)
        parent = (torch.arange(b, device=src.device)[:, None] * k + index // vocab).view(-1)  # (B·K,)
        token = (index % vocab).view(-1)
        seqs = torch.cat([seqs[parent], token[:, None]], dim=1)
        finished = finished[parent] | (token == eos_id)
        if finished.all():
            break
    lengths = (seqs[:, 1:] != pad).sum(-1).view(b, k).float()
    best = (scores / ((5.0 + lengths) / 6.0) ** length_penalty).argmax(-1)  # (B,)
    return seqs.view(b, k, -1)[torch.arange(b, device=src.device), best]


def tiny_transformer(seed: int, vocab: int = 8, eos_bias: float = 0.0) -> Transformer:
    """A random post-norm Transformer with a small vocabulary, so EOS comes at different steps per row."""
    torch.manual_seed(seed)
    model = Transformer(TransformerConfig(vocab, vocab, d_model=16, num_heads=2, num_encoder_layers=2,
                                          num_decoder_layers=2, d_ff=32, dropout=0.0, max_len=64)).eval()
    with torch.no_grad():
        model.generator.bias[EOS] += eos_bias
    return model


def ragged_src(seed: int, batch: int = 6, width: int = 7, vocab: int = 8) -> torch.Tensor:
    """Source rows of different lengths (right-padded with PAD), like the reversal task's batches."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, vocab, (batch, width), generator=g)
    lengths = torch.randint(2, width + 1, (batch,), generator=g)
    return src.masked_fill(torch.arange(width)[None] >= lengths[:, None], PAD)  # (B, S)


# (seed, EOS bias) of random models whose greedy rows stop at different steps (checked below)
CASES = [(0, 0.0), (2, 0.0), (2, 2.0), (3, 3.0)]


@pytest.mark.parametrize("seed, eos_bias", CASES)
def test_seq2seq_greedy_equals_the_old_loop(seed, eos_bias):
    model, src = tiny_transformer(seed, eos_bias=eos_bias), ragged_src(seed)
    for max_len in (1, 5, 12):
        want = old_greedy_decode(model, src, max_len)
        got = seq2seq.greedy_decode(model, src, max_len)
        assert got.tolist() == want.tolist()
    assert isinstance(seq2seq.as_decoder(model, src), Decoder)


def test_seq2seq_greedy_covers_finished_and_running_rows():
    """The comparison above is not vacuous: some rows stop early (then pad), others run to max_len."""
    stops = []
    for seed, eos_bias in CASES:
        out = seq2seq.greedy_decode(tiny_transformer(seed, eos_bias=eos_bias), ragged_src(seed), 12)
        has_eos = (out == EOS).any(-1)
        stops.append(sorted({int((row == EOS).nonzero()[0]) if eos else -1 for row, eos in zip(out, has_eos)}))
        assert (out[has_eos, -1] == PAD).all() or out.shape[1] < 13  # stopped rows continue with padding
    assert stops == [[-1, 1], [-1], [-1, 1, 2, 4, 9, 10], [1, 3, 5]]  # no EOS (-1) or EOS at these steps
    model, src = tiny_transformer(0, eos_bias=20.0), ragged_src(0)
    assert seq2seq.greedy_decode(model, src, 12).tolist() == [[BOS, EOS]] * 6  # every row stops at once


@pytest.mark.parametrize("beam_size", [1, 3, 5])
@pytest.mark.parametrize("seed, eos_bias", CASES)
def test_seq2seq_beam_search_equals_the_old_loop(seed, eos_bias, beam_size):
    model, src = tiny_transformer(seed, eos_bias=eos_bias), ragged_src(seed)
    for max_len in (1, 6, 12):
        for alpha in (0.0, 0.6):
            want = old_beam_search(model, src, max_len, beam_size, alpha)
            got = seq2seq.beam_search(model, src, max_len, beam_size, alpha)
            assert got.tolist() == want.tolist()


def test_seq2seq_adapter_runs_any_generate_option():
    """The adapter is a plain Decoder: sampling and the no-cache path go through the same loop."""
    model, src = tiny_transformer(1), ragged_src(1)
    decoder = seq2seq.as_decoder(model, src)
    start = torch.full((src.shape[0], 1), BOS, dtype=torch.long)
    greedy = generate(decoder, start, 6)
    assert generate(decoder, start, 6, use_cache=False).tolist() == greedy.tolist()
    sampled = generate(decoder, start, 6, temperature=1.0, top_k=3, generator=torch.Generator().manual_seed(0))
    assert sampled.shape == (6, 7) and (sampled[:, 0] == BOS).all()
    with pytest.raises(ValueError, match="batch_size 2 differs from the encoded batch 6"):
        decoder.new_cache(2, 8)
    with pytest.raises(ValueError, match="Transformer cannot decode padded prompts"):
        generate(decoder, start.repeat(1, 2), 3, attention_mask=torch.tensor([[0, 1]] * 6))
    with pytest.raises(TypeError, match="course_lib.transformer.Transformer"):
        seq2seq.as_decoder(torch.nn.Linear(2, 2), src)
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        seq2seq.greedy_decode(model, src, 0)


@torch.no_grad()
def old_vlm_generate(vlm, pixel_values, bos_token_id, max_new_tokens):
    """``PrefixVLM.generate`` before the decoding interface (2026-12-01): reruns vision and text each step."""
    ids = torch.full((pixel_values.shape[0], 1), bos_token_id, dtype=torch.long, device=pixel_values.device)
    for _ in range(max_new_tokens):
        nxt = vlm(pixel_values, ids).logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
        ids = torch.cat([ids, nxt], dim=1)
    return ids


def tiny_vlm(seed: int):
    from course_lib.models.clip import TextConfig
    from course_lib.models.vit import ViT, ViTConfig
    from course_lib.models.vlm import PrefixVLM

    torch.manual_seed(seed)
    vit = ViT(ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=48))
    vlm = PrefixVLM(vit, TextConfig(vocab_size=15, max_position_embeddings=24, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=48)).eval()
    with torch.no_grad():  # random image tokens barely move a random decoder: enlarge them so images differ
        vlm.multi_modal_projector.linear_1.weight.mul_(4.0)
        vlm.multi_modal_projector.linear_2.weight.mul_(4.0)
    return vlm


@pytest.mark.parametrize("seed", range(3))
def test_vlm_greedy_equals_the_old_loop(seed):
    vlm = tiny_vlm(seed)
    pixels = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    for n in (1, 4, 8):  # 16 image tokens + 8 caption positions = the 24-position window
        want = old_vlm_generate(vlm, pixels, 1, n)
        got = vlm.generate(pixels, 1, n)
        assert got.tolist() == want.tolist() and got.shape == (5, 1 + n)
    assert len({tuple(r) for r in want.tolist()}) > 1  # the images lead to different captions
    decoder = vlm.as_decoder(pixels)
    assert isinstance(decoder, Decoder)
    start = torch.ones(5, 1, dtype=torch.long)
    assert generate(decoder, start, 6, use_cache=False).tolist() == want[:, :7].tolist()
    with pytest.raises(ValueError, match="batch_size 2 differs from the image batch 5"):
        decoder.new_cache(2, 4)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=24"):
        vlm.generate(pixels, 1, 9)  # past the window, as before
