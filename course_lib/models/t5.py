"""T5, the encoder–decoder Transformer (Raffel et al. 2020), with HF ``T5Model`` parameter names.

What differs from the 2017 Transformer (T5 paper §2.1):

- no position embeddings: each attention adds a learned scalar per head and **relative-position
  bucket** to the scores, ``s_ij = q_i·k_j + b[bucket(j - i)]`` (no 1/√d scaling either); the bias
  lives in the first layer of each stack and is reused by the others. Buckets are exact for small
  distances and logarithmic up to ``max_distance`` (:func:`relative_position_bucket`);
- pre-LN with RMS-style LayerNorm (scale only, no mean, no bias) — ``course_lib.layers.RMSNorm``;
- one embedding matrix shared by encoder input, decoder input and (tied) output head, whose input
  is scaled by d_model^-0.5 (original T5).

Names follow HF: ``shared``, ``encoder.block.{i}.layer.{0: SelfAttention, 1: EncDecAttention /
DenseReluDense}``. HF also stores the tied copies listed in :data:`HF_TIED`; the loader checks they
equal ``shared.weight`` and drops them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import causal_mask
from course_lib.checks import check_token_ids
from course_lib.layers import RMSNorm
from course_lib.models.hf import load_hf_weights
from course_lib.models.t5_attention import T5Attention as T5Attention
from course_lib.models.t5_attention import T5LayerCrossAttention, T5LayerSelfAttention
from course_lib.models.t5_attention import relative_position_bucket as relative_position_bucket
from course_lib.models.t5_config import T5Config
from course_lib.models.t5_decoding import T5GenerationMixin
from course_lib.transformer import Seq2SeqOutput

HF_TIED = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight")  # = shared.weight


class T5DenseActDense(nn.Module):
    """``wo · act(wi · x)``, or gated: ``wo · (GELU(wi_0 · x) ⊙ wi_1 · x)`` (T5 v1.1)."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.gated = config.feed_forward_proj == "gated-gelu"
        if self.gated:
            self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
            self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        else:
            self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x):
        """wo(act(wi x)), or wo(gelu(wi_0 x) ⊙ wi_1 x) when gated."""
        h = F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x) if self.gated else F.relu(self.wi(x))
        return self.wo(self.dropout(h))


class T5LayerFF(nn.Module):
    """Pre-norm feed-forward sublayer with residual (HF ``T5LayerFF``)."""
    def __init__(self, config: T5Config):
        super().__init__()
        self.DenseReluDense = T5DenseActDense(config)
        self.layer_norm = RMSNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x):
        """x + dropout(FF(RMSNorm x))."""
        return x + self.dropout(self.DenseReluDense(self.layer_norm(x)))


class T5Block(nn.Module):
    """One T5 block: self-attention, (cross-attention in the decoder), feed-forward."""
    def __init__(self, config: T5Config, has_relative_attention_bias: bool, is_decoder: bool):
        super().__init__()
        self.layer = nn.ModuleList([T5LayerSelfAttention(config, has_relative_attention_bias, not is_decoder)])
        if is_decoder:
            self.layer.append(T5LayerCrossAttention(config))
        self.layer.append(T5LayerFF(config))

    def forward(self, x, self_bias, memory=None, cross_bias=None, need_weights=False, cache=None, layer=0):
        """``x`` ``(B, T, D)`` → ``(block output, self weights, cross weights)``."""
        x, self_w = self.layer[0](x, self_bias, need_weights, cache, layer)
        cross_w = None
        if memory is not None:
            x, cross_w = self.layer[1](x, memory, cross_bias, need_weights)
        return self.layer[-1](x), self_w, cross_w


class T5Stack(nn.Module):
    """Encoder (bidirectional) or decoder (causal + cross-attention); embeddings come from ``shared``."""

    def __init__(self, config: T5Config, shared: nn.Embedding, is_decoder: bool):
        super().__init__()
        self.is_decoder = is_decoder
        self.shared = [shared]  # a list: the shared matrix is registered once, on the model
        n = config.num_decoder_layers if is_decoder else config.num_layers
        self.block = nn.ModuleList(T5Block(config, i == 0, is_decoder) for i in range(n))
        self.final_layer_norm = RMSNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, input_ids, mask, memory=None, memory_mask=None, need_weights=False, cache=None):
        """``mask`` (B, past + T) 1 = real token; ``memory`` (B, S, D) and ``memory_mask`` (B, S) for the decoder.

        Decoding: ``memory`` may be one projected ``(k, v)`` pair per block and ``cache`` a
        :class:`course_lib.kv_cache.KVCache` of the decoder's self-attention (see ``t5_decoding``).
        """
        B, T = input_ids.shape
        past = 0 if cache is None else cache.length
        allowed = mask.bool()[:, None, None, :]  # (B, 1, 1, past + T)
        if self.is_decoder:
            allowed = allowed & causal_mask(T, past + T, device=input_ids.device)  # (B, 1, T, past + T)
        bias = self.block[0].layer[0].SelfAttention.compute_bias(T, past + T, input_ids.device)  # (1, H, T, past + T)
        self_bias = bias.masked_fill(~allowed, float("-inf"))  # (B, H, T, past + T)
        cross_bias = None
        if memory is not None:
            cross_bias = torch.zeros(B, 1, 1, memory_mask.shape[1], device=memory_mask.device)  # no position bias
            cross_bias = cross_bias.masked_fill(~memory_mask.bool()[:, None, None, :], float("-inf"))
        x = self.dropout(self.shared[0](input_ids))  # (B, T, D)
        self_ws, cross_ws = [], []
        for i, block in enumerate(self.block):
            x, self_w, cross_w = block(x, self_bias, memory[i] if isinstance(memory, list) else memory, cross_bias,
                                       need_weights, cache, i)
            self_ws.append(self_w)
            cross_ws.append(cross_w)
        if cache is not None:
            cache.advance(T)
        return self.dropout(self.final_layer_norm(x)), tuple(self_ws), tuple(cross_ws)


class T5Model(nn.Module):
    """Encoder–decoder without the head: returns the decoder's hidden states."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, self.shared, is_decoder=False)
        self.decoder = T5Stack(config, self.shared, is_decoder=True)

    @classmethod
    def from_hf(cls, config, state_dict: dict[str, torch.Tensor]):
        """The model from a transformers ``T5Config`` (or config.json dict) and state dict, tied copies checked; eval mode."""
        return load_hf_weights(cls(T5Config.from_hf(config)), state_dict, {name: "shared.weight" for name in HF_TIED})

    def _check(self, name: str, ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        check_token_ids(ids, self.config.vocab_size, name)
        if mask is None:
            return torch.ones_like(ids)
        if mask.shape != ids.shape:
            raise ValueError(f"the attention mask for {name} must have shape {tuple(ids.shape)}, got {tuple(mask.shape)}")
        return mask

    def forward(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None, decoder_attention_mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> Seq2SeqOutput:
        """Encode ``input_ids``, decode ``decoder_input_ids``: :class:`Seq2SeqOutput` with the decoder's hidden states."""
        enc_mask = self._check("input_ids", input_ids, attention_mask)
        dec_mask = self._check("decoder_input_ids", decoder_input_ids, decoder_attention_mask)
        if decoder_input_ids.shape[0] != input_ids.shape[0]:
            raise ValueError(f"input_ids and decoder_input_ids need the same batch size, got "
                             f"{input_ids.shape[0]} and {decoder_input_ids.shape[0]}")
        memory, enc_w, _ = self.encoder(input_ids, enc_mask, need_weights=output_attentions)
        h, dec_w, cross_w = self.decoder(decoder_input_ids, dec_mask, memory, enc_mask, output_attentions)
        if not output_attentions:
            return Seq2SeqOutput(None, last_hidden_state=h, encoder_last_hidden_state=memory)
        return Seq2SeqOutput(None, enc_w, dec_w, cross_w, h, memory)


class T5ForConditionalGeneration(T5Model, T5GenerationMixin):
    """T5 with the tied LM head: ``logits = (h · d_model^-0.5) Eᵀ``; ``generate`` / ``as_decoder`` decode with a KV cache."""

    def forward(self, input_ids, decoder_input_ids, attention_mask=None, decoder_attention_mask=None,
                output_attentions=False) -> Seq2SeqOutput:
        """:class:`Seq2SeqOutput` with ``logits`` ``(B, T_dec, V)`` from the tied head."""
        out = super().forward(input_ids, decoder_input_ids, attention_mask, decoder_attention_mask, output_attentions)
        out.logits = self.lm_logits(out.last_hidden_state)  # (B, T_dec, V)
        return out

    def lm_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Tied head on decoder states ``(..., D)`` -> ``(..., V)``."""
        if self.config.scale_decoder_outputs:
            h = h * self.config.d_model ** -0.5
        return h @ self.shared.weight.T


def shift_right(labels: torch.Tensor, decoder_start_token_id: int = 0, pad_token_id: int = 0) -> torch.Tensor:
    """Teacher forcing: decoder input = [start] + labels[:-1] (−100 ignored labels become padding)."""
    out = torch.full_like(labels, decoder_start_token_id)
    out[:, 1:] = labels[:, :-1]
    return out.masked_fill(out == -100, pad_token_id)
