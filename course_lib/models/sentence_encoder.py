"""Sentence embeddings from BERT (Reimers & Gurevych 2019, §3), as all-MiniLM-L6-v2 computes them.

    v = normalize( Σ_t m_t h_t / Σ_t m_t )       h = BertModel(WordPiece(text)), m = attention mask

the mean of the last hidden states over real tokens, then L2-normalised, as sentence-transformers'
``Pooling(mean)`` + ``Normalize`` modules do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.models.bert import BertModel


def mean_pooling(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Σ_t m_t h_t / Σ_t m_t over real tokens: ``(B, T, D), (B, T) -> (B, D)``."""
    if last_hidden_state.dim() != 3 or attention_mask.shape != last_hidden_state.shape[:2]:
        raise ValueError(f"need last_hidden_state (B, T, D) and attention_mask (B, T), got "
                         f"{tuple(last_hidden_state.shape)} and {tuple(attention_mask.shape)}")
    m = attention_mask.to(last_hidden_state.dtype).unsqueeze(-1)  # (B, T, 1)
    return (last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, D)


class SentenceEncoder:
    """Text → unit-length sentence vectors: WordPiece → BERT → mean pooling → L2 normalisation."""

    def __init__(self, model: BertModel, tokenizer, max_seq_length: int = 256):
        if max_seq_length > model.config.max_position_embeddings:
            raise ValueError(f"max_seq_length {max_seq_length} exceeds the model's "
                             f"max_position_embeddings {model.config.max_position_embeddings}")
        self.model, self.tokenizer, self.max_seq_length = model.eval(), tokenizer, max_seq_length

    @torch.no_grad()
    def encode(self, sentences: list[str], batch_size: int = 32) -> torch.Tensor:
        """``(N, D)`` unit vectors. Sentences are batched by length (less padding), then put back in order."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        encs = [self.tokenizer.encode(s, max_length=self.max_seq_length).input_ids for s in sentences]
        order = sorted(range(len(encs)), key=lambda i: -len(encs[i]))
        device = next(self.model.parameters()).device
        out = torch.empty(len(encs), self.model.config.hidden_size)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = len(encs[idx[0]])
            ids = torch.full((len(idx), width), self.model.config.pad_token_id, dtype=torch.long)  # (b, T)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(idx):
                ids[row, :len(encs[i])] = torch.tensor(encs[i])
                mask[row, :len(encs[i])] = 1
            ids, mask = ids.to(device), mask.to(device)
            h = self.model(ids, mask).last_hidden_state  # (b, T, D)
            out[idx] = F.normalize(mean_pooling(h, mask), dim=-1).cpu()
        return out
