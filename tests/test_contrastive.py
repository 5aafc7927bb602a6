"""InfoNCE with in-batch negatives against sentence-transformers' MultipleNegativesRankingLoss, and the
differentiable embedding path against ``SentenceEncoder.encode`` on the real MiniLM weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.embedding.contrastive import embed, fine_tune, info_nce


def test_info_nce_equals_sentence_transformers_mnrl():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    from course_lib import weights

    q = F.normalize(torch.randn(8, 16), dim=1)
    d = F.normalize(torch.randn(8, 16), dim=1)
    ref = MultipleNegativesRankingLoss(SentenceTransformer(str(weights.minilm_path()), device="cpu"), scale=20.0)
    expected = ref.compute_loss_from_embeddings([q, d], labels=None)
    torch.testing.assert_close(info_nce(q, d, temperature=0.05), expected)   # same formula, fp32


def test_info_nce_by_hand_and_bad_input():
    q, d = F.normalize(torch.randn(4, 8), dim=1), F.normalize(torch.randn(4, 8), dim=1)
    logits = q @ d.T / 0.1
    by_hand = -(logits.diag() - logits.logsumexp(1)).mean()
    torch.testing.assert_close(info_nce(q, d, 0.1), by_hand)
    with pytest.raises(ValueError, match="must both be"):
        info_nce(q, d[:3])
    with pytest.raises(ValueError, match="temperature must be positive"):
        info_nce(q, d, 0.0)


def test_embed_matches_encode_and_fine_tune_lowers_the_loss(one_thread):
    from course_lib import pretrained

    encoder = pretrained.minilm()
    encoder.max_seq_length = 32
    texts = ["json dumps", "Serialize obj to a JSON formatted str.", "os path join", "Join two or more paths."]
    with torch.no_grad():
        torch.testing.assert_close(embed(encoder, texts), encoder.encode(texts), atol=1e-5, rtol=1e-4)
    pairs = [(texts[0], texts[1]), (texts[2], texts[3])] * 2
    losses = fine_tune(encoder, pairs, steps=4, batch_size=2, lr=1e-4, progress=False)
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="at least batch_size"):
        fine_tune(encoder, pairs[:1], steps=1, batch_size=2)
