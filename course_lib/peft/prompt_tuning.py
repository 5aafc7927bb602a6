"""Soft prompts on a frozen model: prompt tuning, P-Tuning, prefix tuning / P-Tuning v2.

- Prompt tuning (Lester et al. 2021): n trainable "virtual token" embeddings P (n × D) are put in
  front of the input embeddings; optionally initialised from real token embeddings (§3.2).
- P-Tuning (Liu et al. 2021, §3): the virtual embeddings come out of a prompt encoder,
  an MLP or a bidirectional LSTM + MLP, which makes them easier to optimise (reparameterisation).
- Prefix tuning (Li & Liang 2021, §4) / P-Tuning v2 (Liu et al. 2022): trainable keys and values
  at *every* layer, i.e. a prefilled KV cache of n positions; optionally produced by an MLP from
  a smaller embedding (the reparameterisation of §4.3) and then only that output is kept.

Module and parameter names follow ``peft/tuners/{prompt_tuning,p_tuning,prefix_tuning}/model.py``
(``embedding``, ``mlp_head``, ``lstm_head``, ``transform``) so weights copy across by name. Each
encoder's ``forward(batch_size)`` returns the prompts for a batch.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import nn


def _check_n(num_virtual_tokens: int) -> None:
    if isinstance(num_virtual_tokens, bool) or not isinstance(num_virtual_tokens, int) or num_virtual_tokens <= 0:
        raise ValueError(f"num_virtual_tokens must be a positive int, got {num_virtual_tokens!r}")


class PromptEmbedding(nn.Module):
    """Prompt tuning: ``n`` trainable virtual token embeddings ``(n, D)``."""

    def __init__(self, num_virtual_tokens: int, token_dim: int, init_embeddings: torch.Tensor | None = None):
        super().__init__()
        _check_n(num_virtual_tokens)
        self.num_virtual_tokens = num_virtual_tokens
        self.embedding = nn.Embedding(num_virtual_tokens, token_dim)
        if init_embeddings is not None:
            if init_embeddings.shape != (num_virtual_tokens, token_dim):
                raise ValueError(f"init_embeddings must have shape {(num_virtual_tokens, token_dim)}, "
                                 f"got {tuple(init_embeddings.shape)}")
            self.embedding.weight.data.copy_(init_embeddings)

    @classmethod
    def from_token_ids(cls, num_virtual_tokens: int, word_embeddings: nn.Embedding, token_ids: list[int]):
        """Initialise from real token embeddings: ``token_ids`` repeated / cut to ``n`` (peft's ``TEXT`` init)."""
        _check_n(num_virtual_tokens)
        if not token_ids:
            raise ValueError("token_ids must name at least one token to initialise from")
        ids = (token_ids * math.ceil(num_virtual_tokens / len(token_ids)))[:num_virtual_tokens]
        init = word_embeddings(torch.tensor(ids, device=word_embeddings.weight.device)).detach().clone()
        return cls(num_virtual_tokens, word_embeddings.embedding_dim, init)

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.embedding.weight.unsqueeze(0).expand(batch_size, -1, -1)  # (B, n, D)


class PromptEncoder(nn.Module):
    """P-Tuning: virtual embeddings reparameterised by an MLP or a bidirectional LSTM + MLP (peft's layout)."""

    def __init__(self, num_virtual_tokens: int, token_dim: int, hidden_size: int, kind: str = "MLP",
                 lstm_layers: int = 2, dropout: float = 0.0):
        super().__init__()
        _check_n(num_virtual_tokens)
        if kind not in ("MLP", "LSTM"):
            raise ValueError(f"kind must be 'MLP' or 'LSTM', got {kind!r}")
        self.num_virtual_tokens, self.kind = num_virtual_tokens, kind
        self.embedding = nn.Embedding(num_virtual_tokens, token_dim)
        if kind == "LSTM":
            self.lstm_head = nn.LSTM(token_dim, hidden_size, num_layers=lstm_layers, dropout=dropout,
                                     bidirectional=True, batch_first=True)
            self.mlp_head = nn.Sequential(nn.Linear(2 * hidden_size, 2 * hidden_size), nn.ReLU(),
                                          nn.Linear(2 * hidden_size, token_dim))
        else:
            self.mlp_head = nn.Sequential(nn.Linear(token_dim, hidden_size), nn.ReLU(),
                                          nn.Linear(hidden_size, hidden_size), nn.ReLU(),
                                          nn.Linear(hidden_size, token_dim))

    def forward(self, batch_size: int) -> torch.Tensor:
        x = self.embedding.weight.unsqueeze(0).expand(batch_size, -1, -1)  # (B, n, D)
        if self.kind == "LSTM":
            x = self.lstm_head(x)[0]  # (B, n, 2·hidden): each virtual token sees all the others
        return self.mlp_head(x)  # (B, n, D)


class PrefixEncoder(nn.Module):
    """Prefix tuning: per-layer keys and values ``(B, n, L·2·kv_dim)``, optionally through an MLP (``transform``)."""

    def __init__(self, num_virtual_tokens: int, num_layers: int, kv_dim: int, token_dim: int | None = None,
                 hidden_size: int | None = None, projection: bool = False):
        super().__init__()
        _check_n(num_virtual_tokens)
        self.num_virtual_tokens, self.num_layers, self.projection = num_virtual_tokens, num_layers, projection
        out = num_layers * 2 * kv_dim
        if projection:
            if token_dim is None or hidden_size is None:
                raise ValueError("projection=True needs token_dim and hidden_size")
            self.embedding = nn.Embedding(num_virtual_tokens, token_dim)
            self.transform = nn.Sequential(nn.Linear(token_dim, hidden_size), nn.Tanh(), nn.Linear(hidden_size, out))
        else:
            self.embedding = nn.Embedding(num_virtual_tokens, out)

    def forward(self, batch_size: int) -> torch.Tensor:
        x = self.embedding.weight.unsqueeze(0).expand(batch_size, -1, -1)  # (B, n, ·)
        return self.transform(x) if self.projection else x  # (B, n, L·2·kv_dim)


class PrefixCache:
    """A KV cache that starts with the prefix's keys and values and concatenates (so gradients reach the prefix).

    Duck-types :class:`course_lib.models.llama.KVCache` (``update``, ``advance``, ``length``,
    ``max_len``, ``batch_size``) for one forward pass of a course LLaMA.
    """

    def __init__(self, past: torch.Tensor, num_layers: int, kv_heads: int, head_dim: int):
        B, n, _ = past.shape
        kv = past.view(B, n, num_layers * 2, kv_heads, head_dim).permute(2, 0, 3, 1, 4)  # (2L, B, H_kv, n, d)
        self.keys, self.values = list(kv[0::2]), list(kv[1::2])  # per layer (B, H_kv, n, d)
        self.batch_size, self.length, self.max_len = B, n, None

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat([self.keys[layer], k], dim=2), torch.cat([self.values[layer], v], dim=2)

    def advance(self, n: int) -> None:
        self.length += n


@contextmanager
def _virtual_embeddings(model, prompts: torch.Tensor):
    """Replace the first n input embeddings of the next forward by ``prompts`` ``(B, n, D)``."""
    n = prompts.shape[1]

    def hook(_module, _inputs, output):  # output: (B, n + T, D)
        return torch.cat([prompts.to(output.dtype), output[:, n:]], dim=1)

    handle = model.model.embed_tokens.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def forward_with_prompts(model, prompts: torch.Tensor, input_ids: torch.Tensor,
                         attention_mask: torch.Tensor | None = None):
    """Prompt tuning / P-Tuning forward: ``[prompts; embed(input_ids)]`` -> logits ``(B, n + T, V)`` (as peft)."""
    B, n = input_ids.shape[0], prompts.shape[1]
    if prompts.dim() != 3 or prompts.shape[0] != B:
        raise ValueError(f"prompts must be (B, n, D) with B = {B}, got {tuple(prompts.shape)}")
    placeholder = torch.zeros(B, n, dtype=input_ids.dtype, device=input_ids.device)  # positions 0..n-1
    if attention_mask is not None:
        attention_mask = torch.cat([torch.ones_like(placeholder), attention_mask], dim=1)
    with _virtual_embeddings(model, prompts):
        return model(torch.cat([placeholder, input_ids], dim=1), attention_mask=attention_mask)


def forward_with_prefix(model, past: torch.Tensor, input_ids: torch.Tensor):
    """Prefix tuning forward: every layer attends to the prefix's n keys/values first -> logits ``(B, T, V)``."""
    config = model.config
    if past.dim() != 3 or past.shape[0] != input_ids.shape[0] or past.shape[2] != (
            config.num_hidden_layers * 2 * config.num_key_value_heads * config.head_dim):
        raise ValueError(f"past must be (B, n, layers·2·kv_heads·head_dim) for this model, got {tuple(past.shape)}")
    cache = PrefixCache(past, config.num_hidden_layers, config.num_key_value_heads, config.head_dim)
    cache.max_len = cache.length + input_ids.shape[1]
    return model(input_ids, cache=cache)
