"""ViT = HF ``ViTModel``, CLIP text tower = HF ``CLIPTextModel``, InfoNCE = HF's CLIP loss (same weights, fp32),
the toy CLIP's held-out retrieval accuracy, and the LLaVA-style prefix decoder.

Tolerance: ``assert_close`` fp32 defaults (rtol 1.3e-6, atol 1e-5): the same LayerNorm/linear/softmax ops on
the same weights; only the attention kernel differs (HF eager matmuls vs ours), a few ulp.
"""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModel
from transformers import ViTConfig as HFViTConfig
from transformers import ViTModel as HFViTModel
from transformers.models.clip.modeling_clip import image_text_contrastive_loss

from course_lib.models.clip import (
    CLIP,
    CLIPConfig,
    TextConfig,
    TextTransformer,
    clip_loss,
    retrieval_accuracy,
)
from course_lib.models.clip import (
    state_dict_from_hf as clip_state_dict_from_hf,
)
from course_lib.models.vit import ViT, ViTConfig, patchify, state_dict_from_hf
from course_lib.models.vlm import PrefixVLM, Projector
from course_lib.tasks.shapes import CAPTION_WORDS, CAPTIONS, CLASSES, draw_shape, render, sample_batch
from course_lib.tokenizers.word import WordTokenizer
from course_lib.training import train

VIT = ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                num_attention_heads=4, intermediate_size=48)


def _randomise(module: torch.nn.Module) -> None:
    """Random values in every parameter (LayerNorm weights/biases too), so no name mix-up can hide."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.2)


def test_vit_equals_hf_vit():
    hf = HFViTModel(HFViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=48, attn_implementation="eager"),
                    add_pooling_layer=False).eval()
    _randomise(hf)
    ours = ViT(VIT).eval()
    result = ours.load_state_dict(state_dict_from_hf(hf.state_dict()), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    pixels = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        ref = hf(pixel_values=pixels, output_attentions=True)
        out = ours(pixels, output_attentions=True)
    torch.testing.assert_close(out.last_hidden_state, ref.last_hidden_state)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (3, 4, 17, 17)
    for a, b in zip(out.attentions, ref.attentions):
        torch.testing.assert_close(a, b)
    assert ours(pixels).attentions is None


def test_patchify_is_the_conv_patch_embedding():
    vit = ViT(VIT)
    pixels = torch.randn(2, 3, 16, 16)
    conv = vit.patch_embedding(pixels).flatten(2).transpose(1, 2)  # (B, N, D)
    weight = vit.patch_embedding.weight.reshape(32, -1)  # (D, C·P·P)
    torch.testing.assert_close(patchify(pixels, 4) @ weight.T + vit.patch_embedding.bias, conv)
    assert patchify(pixels, 4).shape == (2, 16, 48)


def test_text_tower_equals_hf_clip_text_model():
    hf = CLIPTextModel(CLIPTextConfig(vocab_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=48, max_position_embeddings=12, hidden_act="gelu",
                                      layer_norm_eps=1e-5, pad_token_id=0, bos_token_id=1, eos_token_id=3,
                                      attn_implementation="eager")).eval()
    _randomise(hf)
    ours = TextTransformer(TextConfig(vocab_size=16, max_position_embeddings=12, hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=4, intermediate_size=48, eos_token_id=3)).eval()
    result = ours.load_state_dict(clip_state_dict_from_hf(hf.state_dict()), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    ids = torch.tensor([[1, 5, 7, 9, 3, 0, 0], [1, 4, 3, 0, 0, 0, 0], [1, 6, 6, 8, 10, 11, 3]])
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=(ids != 0).long())
        hidden = ours(ids).last_hidden_state
    keep = ids != 0  # HF leaves padded query rows unmasked differently; only real tokens are compared
    torch.testing.assert_close(hidden[keep], ref.last_hidden_state[keep])
    torch.testing.assert_close(ours.pooled(ids, hidden), ref.pooler_output)


def test_clip_loss_equals_hf():
    logits = torch.randn(7, 7) * 5
    torch.testing.assert_close(clip_loss(logits), image_text_contrastive_loss(logits.T))


def _toy_clip_and_data(steps: int):
    """The small configuration the notebook uses: 32×32 images, 8×8 patches, batches of 48 distinct captions."""
    torch.manual_seed(0)
    tok = WordTokenizer(CAPTION_WORDS)
    model = CLIP(CLIPConfig(text=TextConfig(vocab_size=tok.vocab_size)))
    g = torch.Generator().manual_seed(1)

    def batch(_step):
        images, captions, _ = sample_batch(48, generator=g)
        return images, tok.encode_batch(captions).input_ids

    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    train(model, batch, lambda m, b: clip_loss(m(*b)), opt, steps, scheduler=sched, desc="toy CLIP")
    return model, tok


def test_toy_clip_retrieval_at_least_90_percent():
    """Acceptance: ≥ 90 % top-1 image→text retrieval (over all 48 captions) on 480 held-out images."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is fastest, and fair to a shared 2-core runner
    try:
        model, tok = _toy_clip_and_data(steps=600)
        images, _, labels = sample_batch(480, generator=torch.Generator().manual_seed(12345))  # never trained on
        with torch.no_grad():
            acc = retrieval_accuracy(model.encode_image(images), model.encode_text(tok.encode_batch(list(CAPTIONS)).input_ids),
                                     labels)
    finally:
        torch.set_num_threads(threads)
    assert acc >= 0.90, f"held-out top-1 image→text retrieval {acc:.3f} < 0.90"


def test_prefix_vlm_shapes_and_causality():
    tok = WordTokenizer(CAPTION_WORDS)
    vlm = PrefixVLM(ViT(VIT), TextConfig(vocab_size=tok.vocab_size, max_position_embeddings=24, hidden_size=32,
                                         num_attention_heads=4, intermediate_size=48)).eval()
    assert vlm.num_image_tokens == 16
    assert not any(p.requires_grad for p in vlm.vision_model.parameters())  # frozen vision tower
    pixels = torch.rand(2, 3, 16, 16)
    batch = tok.encode_batch(["a small red ring", "a large blue cross"])
    ids = batch.input_ids  # (2, 6)
    assert batch.attention_mask.tolist() == [[1] * 6, [1] * 6] and batch.input_ids.dtype == torch.long
    short = tok.encode_batch(["a ring", "a small red ring"], length=7)  # right-padded to a fixed width
    assert short.input_ids[0].tolist() == [tok.bos_id, 3, 12, tok.eos_id, 0, 0, 0]
    assert short.attention_mask.tolist() == [[1, 1, 1, 1, 0, 0, 0], [1] * 6 + [0]]
    out = vlm(pixels, ids, output_attentions=True)
    logits = out.logits
    assert logits.shape == (2, 6, tok.vocab_size) and out.attentions[0].shape == (2, 4, 22, 22)
    assert vlm(pixels, ids).attentions is None
    changed = ids.clone()
    changed[:, 4] = 5
    torch.testing.assert_close(vlm(pixels, changed).logits[:, :4], logits[:, :4])  # later tokens never leak back
    assert not torch.allclose(vlm(torch.rand(2, 3, 16, 16), ids).logits, logits)  # the image prefix is read
    assert vlm.loss(pixels, ids).dim() == 0
    out = vlm.generate(pixels, tok.bos_id, max_new_tokens=4)
    assert out.shape == (2, 5) and (out[:, 0] == tok.bos_id).all()
    assert Projector(32, 8)(torch.randn(2, 16, 32)).shape == (2, 16, 8)


def test_synthetic_data():
    g = torch.Generator().manual_seed(0)
    images, captions, labels = sample_batch(60, generator=g)
    assert images.shape == (60, 3, 32, 32) and 0.0 <= images.min() and images.max() <= 1.0
    assert len(set(captions[:48])) == 48  # a batch of 48 holds every caption once: no false negatives
    assert captions[0] == CAPTIONS[labels[0]]
    again = sample_batch(60, generator=torch.Generator().manual_seed(0))[0]
    torch.testing.assert_close(again, images)  # same seed, same images
    tok = WordTokenizer(CAPTION_WORDS)
    assert tok.decode(tok.encode("a small red ring")) == "a small red ring"
    assert draw_shape("ring", "red", "small").shape == (3, 32, 32)
    assert len(CLASSES) == 48 == len(set(CAPTIONS))


def test_bad_input():
    vit = ViT(VIT)
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(B, 3, 16, 16\) \(image_size=16\)"):
        vit(torch.rand(1, 3, 32, 32))
    with pytest.raises(TypeError, match="pixel_values must be a floating-point tensor"):
        vit(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="image_size 30 must be a multiple of patch_size 8"):
        ViT(ViTConfig(image_size=30))
    with pytest.raises(ValueError, match="must be a multiple of num_attention_heads"):
        ViT(ViTConfig(hidden_size=30))
    with pytest.raises(ValueError, match=r"images must have shape \(B, C, H, W\)"):
        patchify(torch.rand(1, 3, 10, 10), 4)
    text = TextTransformer(TextConfig(vocab_size=16, max_position_embeddings=8))
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 16\)"):
        text(torch.tensor([[1, 16, 2]]))
    with pytest.raises(ValueError, match="sequence of 9 tokens exceeds max_position_embeddings=8"):
        text(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="every row of input_ids must contain eos_token_id=2"):
        text.pooled(torch.tensor([[1, 3]]), torch.zeros(1, 2, 64))
    vlm = PrefixVLM(ViT(VIT), TextConfig(vocab_size=16, max_position_embeddings=20, hidden_size=32))
    with pytest.raises(ValueError, match="sequence of 21 tokens exceeds max_position_embeddings=20"):
        vlm(torch.rand(1, 3, 16, 16), torch.ones(1, 5, dtype=torch.long))  # 16 image tokens + 5
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(B, 3, 16, 16\)"):
        vlm(torch.rand(1, 3, 32, 32), torch.ones(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"logits_per_image must be square"):
        clip_loss(torch.randn(3, 4))
    with pytest.raises(ValueError, match="labels must have one entry per image"):
        retrieval_accuracy(torch.randn(3, 4), torch.randn(5, 4), torch.tensor([0, 1]))
    tok = WordTokenizer(CAPTION_WORDS)
    with pytest.raises(ValueError, match=r"words \['dog'\] are not in the vocabulary"):
        tok.encode("a red dog")
    with pytest.raises(TypeError, match="non-empty list of str"):
        tok.encode_batch("a red ring")
    with pytest.raises(ValueError, match="more than the padded width 3"):
        tok.encode_batch(["a red ring"], length=3)
    with pytest.raises(ValueError, match="unknown class"):
        draw_shape("hexagon", "red", "small")
    with pytest.raises(ValueError, match="labels must be a"):
        render(torch.tensor([48]))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        sample_batch(0)
    with pytest.raises(ValueError, match="image_size must be an int >= 16"):
        sample_batch(2, image_size=8)
