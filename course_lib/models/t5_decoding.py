"""T5 decoding: the decoder as a :class:`course_lib.generation.Decoder`, with a KV cache.

An encoder–decoder decodes through its decoder while the encoder memory stays fixed:

- the encoder runs once on the source, and each decoder block projects that memory to its
  cross-attention keys/values once (HF's ``EncoderDecoderCache.cross_attention_cache``);
- the decoder self-attention keys/values of earlier target tokens go in a
  :class:`course_lib.kv_cache.KVCache` (HF's ``self_attention_cache``), so a step runs one token.

T5's relative position bias for a step is the last row(s) of the full bias matrix (the queries are
the last positions, :meth:`T5Attention.compute_bias`), so a cached step computes what the full
decoder computes at that position (tested against recomputation and HF ``generate``).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from course_lib import generation
from course_lib.kv_cache import KVCache, cached_length


class T5Decoder:
    """:class:`course_lib.generation.Decoder` over T5's decoder with the encoder memory fixed.

    ``model`` is a :class:`course_lib.models.t5.T5ForConditionalGeneration` (this module does not import
    it: ``t5`` imports this one). ``new_cache`` gives the decoder self-attention :class:`KVCache`
    (``num_decoder_layers`` layers); ``decode_step(ids, None)`` recomputes the decoder over ``ids``
    (the whole target so far).
    """

    def __init__(self, model: nn.Module, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None = None):
        mask = model._check("input_ids", input_ids, attention_mask)
        with torch.no_grad():
            memory = model.encoder(input_ids, mask)[0]  # (B, S, D), fixed while decoding
            # each block's cross-attention k, v (B, H, S, Dkv), computed once
            self.cross_kv = [block.layer[1].EncDecAttention.project_kv(memory) for block in model.decoder.block]
        self.model, self.memory, self.memory_mask = model, memory, mask
        c = model.config  # the decoder's cache shape, in KVCache's generic names
        self.config = SimpleNamespace(num_hidden_layers=c.num_decoder_layers, num_attention_heads=c.num_heads,
                                      head_dim=c.d_kv)

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        """An empty self-attention :class:`KVCache` for the decoder, on the model's device and dtype."""
        if batch_size != self.memory.shape[0]:
            raise ValueError(f"batch_size {batch_size} differs from the encoded batch {self.memory.shape[0]}")
        weight = self.model.shared.weight
        return KVCache(self.config, batch_size, max_len, dtype=weight.dtype, device=weight.device)

    def decode_step(self, input_ids: torch.Tensor, cache: KVCache | None,
                    attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache | None]:
        """Decoder ids ``(B, T)`` not yet in ``cache`` → logits ``(B, V)`` of the last position, the extended cache."""
        generation.require_unpadded(attention_mask, "T5Decoder")
        self.model._check("decoder_input_ids", input_ids, None)
        past = cached_length(cache, input_ids, None)
        B, T = input_ids.shape
        mask = torch.ones(B, past + T, dtype=torch.long, device=input_ids.device)  # (B, past + T)
        h = self.model.decoder(input_ids, mask, self.cross_kv, self.memory_mask, cache=cache)[0]  # (B, T, D)
        return self.model.lm_logits(h[:, -1]), cache  # (B, V)


class T5GenerationMixin:
    """``as_decoder`` and ``generate`` for :class:`T5ForConditionalGeneration` (HF's ``GenerationMixin`` role)."""

    def as_decoder(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> T5Decoder:
        """The decoder as a :class:`course_lib.generation.Decoder` (:class:`T5Decoder`), the encoder run once."""
        return T5Decoder(self, input_ids, attention_mask)

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, attention_mask=None, **kwargs) -> torch.Tensor:
        """Decode from ``decoder_start_token_id`` (greedy by default) through :func:`course_lib.generation.generate`.

        Returns the decoder sequence ``(B, 1 + n)``, start token first, like HF ``generate``; the
        decoder self-attention is cached (``use_cache=False`` recomputes it every step).
        """
        start = torch.full((input_ids.shape[0], 1), self.config.decoder_start_token_id, device=input_ids.device)
        return generation.generate(self.as_decoder(input_ids, attention_mask), start, max_new_tokens, **kwargs)
