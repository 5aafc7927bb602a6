"""Contrastive fine-tuning of a sentence encoder with InfoNCE and in-batch negatives
(van den Oord et al. 2018; sentence-transformers' ``MultipleNegativesRankingLoss``).

For a batch of ``B`` (query, document) pairs with unit embeddings ``q_i``, ``d_j``:

    L = −(1/B) Σ_i log( exp(q_i·d_i / τ) / Σ_j exp(q_i·d_j / τ) )

every other document in the batch is a negative for query ``i``; the temperature ``τ`` (0.05 is
sentence-transformers' ``scale = 20``) sharpens the softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.models.sentence_encoder import SentenceEncoder, mean_pooling


def info_nce(q: torch.Tensor, d: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """InfoNCE over in-batch negatives: ``q, d`` of shape ``(B, D)`` (row i of each is a positive pair)."""
    if q.shape != d.shape or q.dim() != 2:
        raise ValueError(f"q and d must both be (B, D), got {tuple(q.shape)} and {tuple(d.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = q @ d.T / temperature                                   # (B, B)
    return F.cross_entropy(logits, torch.arange(q.shape[0], device=q.device))


def embed(encoder: SentenceEncoder, texts: list[str]) -> torch.Tensor:
    """Differentiable ``encoder.encode``: ``(B, D)`` unit vectors, gradients kept, on the model's device."""
    encs = [encoder.tokenizer.encode(t, max_length=encoder.max_seq_length).input_ids for t in texts]
    width = max(len(e) for e in encs)
    ids = torch.full((len(encs), width), encoder.model.config.pad_token_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(encs):
        ids[row, :len(e)] = torch.tensor(e)
        mask[row, :len(e)] = 1
    device = next(encoder.model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    h = encoder.model(ids, mask).last_hidden_state                  # (B, T, D)
    return F.normalize(mean_pooling(h, mask), dim=-1)


def fine_tune(encoder: SentenceEncoder, pairs: list[tuple[str, str]], steps: int, batch_size: int = 16,
              lr: float = 2e-5, temperature: float = 0.05, seed: int = 0, progress: bool = True) -> list[float]:
    """AdamW on InfoNCE over random batches of ``pairs``; returns the loss per step. The model is left in eval mode."""
    if len(pairs) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} pairs, got {len(pairs)}")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(encoder.model.parameters(), lr=lr)
    encoder.model.train()
    losses = []
    steps_iter = range(steps)
    if progress:
        from tqdm.auto import tqdm

        steps_iter = tqdm(steps_iter, desc="InfoNCE fine-tune")
    for _ in steps_iter:
        batch = [pairs[i] for i in torch.randperm(len(pairs), generator=gen)[:batch_size].tolist()]
        loss = info_nce(embed(encoder, [q for q, _ in batch]), embed(encoder, [d for _, d in batch]), temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    encoder.model.eval()
    return losses
