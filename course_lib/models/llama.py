"""LLaMA, a decoder-only Transformer, sized and named so SmolLM2-135M-Instruct loads directly.

Touvron et al. 2023, LLaMA §2.2: pre-normalisation with RMSNorm, SwiGLU feed-forward, rotary
position embedding (RoPE); LLaMA 2 §2.2 / Ainslie et al. 2023: grouped-query attention (GQA),
where ``n_kv_heads < n_heads`` and each key/value head serves ``n_heads / n_kv_heads`` queries.
One block, with h the residual stream:

    h = h + Attention(RMSNorm(h))         # Wo · softmax(RoPE(Wq x) RoPE(Wk x)ᵀ / √d + M) · Wv x
    h = h + SwiGLU(RMSNorm(h))            # W2 (silu(W1 x) ⊙ W3 x)

Reference: ``transformers/models/llama/modeling_llama.py``. Parameter names are HF's, so
:meth:`LlamaForCausalLM.from_hf` loads an HF state dict as is (dropping the tied ``lm_head`` copy). Output embeddings are tied to the input embeddings (no ``lm_head``
parameter when ``tie_word_embeddings``), as in SmolLM2.

Two attention paths give the same numbers (tested): ``output_attentions=True`` uses the
from-scratch attention and returns the weights, otherwise torch's fused kernel
(:func:`course_lib.attention.attend` picks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import attend, left_padding_mask
from course_lib.checks import check_positive_ints, check_token_ids
from course_lib.kv_cache import KVCache, cached_length
from course_lib.layers import RMSNorm, SwiGLU, apply_rope, rope_cos_sin, rope_inv_freq
from course_lib.models.fused import fused_weight, swiglu
from course_lib.models.hf import config_dict, config_from_hf, load_hf_weights, refuse_unsupported


@dataclass
class LlamaConfig:
    """LLaMA hyperparameters with HF ``LlamaConfig`` field names (defaults: SmolLM2-135M)."""
    vocab_size: int = 49152               # tokens in the vocabulary
    hidden_size: int = 576                # d_model, width of the residual stream
    intermediate_size: int = 1536         # SwiGLU hidden width
    num_hidden_layers: int = 30           # decoder blocks
    num_attention_heads: int = 9          # query heads
    num_key_value_heads: int = 3          # key/value heads (GQA groups); = heads for MHA, 1 for MQA
    head_dim: int = 64                    # channels per head
    max_position_embeddings: int = 8192   # longest sequence (context window)
    rope_theta: float = 100000.0          # RoPE base θ
    rms_norm_eps: float = 1e-5            # ε inside RMSNorm
    tie_word_embeddings: bool = True      # output projection shares the embedding matrix
    bos_token_id: int = 1                 # <|im_start|> in SmolLM2
    eos_token_id: int = 2                 # <|im_end|> in SmolLM2

    def __post_init__(self):
        check_positive_ints(self, "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                             f"num_key_value_heads ({self.num_key_value_heads})")
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE, got {self.head_dim}")

    @classmethod
    def from_hf(cls, config) -> LlamaConfig:
        """From a transformers ``LlamaConfig`` or config dict (e.g. ``weights.smollm2_config()``); refuses what we do not compute."""
        hf = config_dict(config)
        rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
        refuse_unsupported({"rope_type": rope.get("rope_type", "default")}, {"rope_type": ("default",)}, cls.__name__)
        values = {"rope_theta": rope.get("rope_theta", hf.get("rope_theta", 10000.0))}
        if hf.get("head_dim") is None:
            values["head_dim"] = hf["hidden_size"] // hf["num_attention_heads"]
        supported = {"hidden_act": ("silu",), "attention_bias": (False,), "mlp_bias": (False,), "pretraining_tp": (1,)}
        return config_from_hf(cls, hf, supported, **values)

    def to_dict(self) -> dict:
        """The config as a plain dict of HF field names."""
        return asdict(self)


class LlamaAttention(nn.Module):
    """Grouped-query self-attention with RoPE on q and k."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = (config.num_attention_heads, config.num_key_value_heads,
                                                        config.head_dim)
        self.q_proj = nn.Linear(config.hidden_size, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, config.hidden_size, bias=False)

    def _qkv(self, x, cos, sin):
        """q ``(B, H, T, d)``, k and v ``(B, H_kv, T, d)``, RoPE applied to q and k."""
        B, T, _ = x.shape
        H, H_kv = self.n_heads, self.n_kv_heads
        w = fused_weight(self, (self.q_proj, self.k_proj, self.v_proj))
        if w is None:
            q = self.q_proj(x).view(B, T, H, self.head_dim).transpose(1, 2)     # (B, H, T, d)
            k = self.k_proj(x).view(B, T, H_kv, self.head_dim).transpose(1, 2)  # (B, H_kv, T, d)
            v = self.v_proj(x).view(B, T, H_kv, self.head_dim).transpose(1, 2)  # (B, H_kv, T, d)
            return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v
        qkv = F.linear(x, w).view(B, T, H + 2 * H_kv, self.head_dim).transpose(1, 2)  # (B, H + 2·H_kv, T, d)
        qk = apply_rope(qkv[:, :H + H_kv], cos, sin)  # one rotation for q and k: the same elementwise maths
        return qk[:, :H], qk[:, H:], qkv[:, H + H_kv:]

    def forward(self, x, cos, sin, mask=None, cache: KVCache | None = None, layer: int = 0,
                output_attentions: bool = False):
        """``x`` ``(B, T, D)`` → ``(o_proj(attention), weights (B, H, T, T_k) or None)``, RoPE on q and k."""
        B, T, _ = x.shape
        q, k, v = self._qkv(x, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, H_kv, T_k, d)
        out, weights = attend(q, k, v, mask, causal=mask is None, need_weights=output_attentions)  # (B, H, T, d)
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, H·d)
        return self.o_proj(out), weights


class LlamaDecoderLayer(nn.Module):
    """One pre-norm LLaMA block: h + Attention(RMSNorm h), then + SwiGLU(RMSNorm ·)."""
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = LlamaAttention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = SwiGLU(config.hidden_size, config.intermediate_size)

    def forward(self, h, cos, sin, mask=None, cache=None, layer=0, output_attentions=False):
        """``h`` ``(B, T, D)`` → ``(block output, attention weights or None)``."""
        attn, weights = self.self_attn(self.input_layernorm(h), cos, sin, mask, cache, layer, output_attentions)
        h = h + attn
        h = h + swiglu(self.mlp, self.post_attention_layernorm(h))
        return h, weights


class LlamaModel(nn.Module):
    """Embeddings, the decoder blocks and the final RMSNorm (HF ``LlamaModel``)."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LlamaDecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


@dataclass
class CausalLMOutput:
    """LlamaForCausalLM's output: logits, attentions, and the cache it extended."""
    logits: torch.Tensor                            # (B, T, vocab)
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, H, T_q, T_k) when asked for
    cache: KVCache | None = None                    # the cache passed in, now holding T more positions


class LlamaForCausalLM(nn.Module):
    """LLaMA with a language-model head: token ids ``(B, T)`` -> next-token logits ``(B, T, V)``."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.model = LlamaModel(config)
        self.lm_head = None if config.tie_word_embeddings else nn.Linear(config.hidden_size, config.vocab_size,
                                                                         bias=False)
        self.register_buffer("inv_freq", rope_inv_freq(config.head_dim, config.rope_theta), persistent=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)  # HF initializer_range

    @classmethod
    def from_hf(cls, config, state_dict: dict[str, torch.Tensor]) -> LlamaForCausalLM:
        """A model from a transformers ``LlamaConfig`` (or dict) and ``LlamaForCausalLM`` state dict, in eval mode."""
        model = cls(LlamaConfig.from_hf(config))
        tied = {"lm_head.weight": "model.embed_tokens.weight"} if model.config.tie_word_embeddings else {}
        return load_hf_weights(model, state_dict, tied)

    def output_embeddings(self) -> torch.Tensor:
        """The output projection ``(V, D)``: the embedding matrix when tied."""
        return self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        """An empty :class:`KVCache` on this model's device and dtype."""
        weight = self.model.embed_tokens.weight
        return KVCache(self.config, batch_size, max_len, dtype=weight.dtype, device=weight.device)

    def _check_inputs(self, input_ids, attention_mask, cache):
        check_token_ids(input_ids, self.config.vocab_size)
        return cached_length(cache, input_ids, self.config.max_position_embeddings)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: KVCache | None = None, output_attentions: bool = False) -> CausalLMOutput:
        """Logits for every position.

        ``attention_mask`` ``(B, past + T)``, 1 for real tokens and 0 for (left) padding, covers the
        cached positions too; positions then count real tokens only (as HF ``generate`` does).
        ``cache`` (from :meth:`new_cache`) holds earlier keys/values and is extended in place.
        """
        h, attentions = self._decoder(input_ids, attention_mask, cache, output_attentions)
        logits = F.linear(h, self.output_embeddings())  # (B, T, V)
        return CausalLMOutput(logits, attentions, cache)

    def decode_step(self, input_ids: torch.Tensor, cache: KVCache | None,
                    attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache | None]:
        """:class:`course_lib.generation.Decoder` step: logits ``(B, V)`` of the last position only."""
        h, _ = self._decoder(input_ids, attention_mask, cache, False, last_only=True)
        return F.linear(h[:, -1], self.output_embeddings()), cache  # (B, V)

    def decode_rows(self, input_ids: torch.Tensor, cache, position_ids: torch.Tensor,
                    key_mask: torch.Tensor) -> torch.Tensor:
        """Continuous-batching step: each row at its own positions; logits ``(B, V)`` of the last position.

        Orca (Yu et al., OSDI'22 §4.2) batches requests at different lengths. ``position_ids``
        ``(B, T)`` are each row's RoPE positions; ``key_mask`` ``(B, 1, T, T_k)`` (True: may attend)
        covers the ``T_k`` keys that ``cache.update(layer, k, v)`` returns. ``cache`` is any object
        with that ``update`` (e.g. ``course_lib.serving.slots.SlotKVCache``) and keeps its own lengths.
        """
        h = self._rows(input_ids, cache, position_ids, key_mask)
        return F.linear(self.model.norm(h[:, -1]), self.output_embeddings())  # (B, V)

    def forward_rows(self, input_ids: torch.Tensor, position_ids: torch.Tensor,
                     key_mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, V)`` of every position at explicit RoPE ``position_ids`` under a bool ``key_mask``.

        Packing (several sequences in one row) passes positions that restart at 0 for each
        sequence and a block-diagonal causal ``key_mask`` ``(B, 1, T, T)``, so no token attends
        across a boundary (``course_lib.posttrain.sft.packed_causal_mask``).
        """
        h = self._rows(input_ids, None, position_ids, key_mask)
        return F.linear(self.model.norm(h), self.output_embeddings())  # (B, T, V)

    def _rows(self, input_ids, cache, position_ids, key_mask):
        check_token_ids(input_ids, self.config.vocab_size)
        if position_ids.shape != input_ids.shape or key_mask.dim() != 4 or key_mask.dtype != torch.bool:
            raise ValueError(f"position_ids must be (B, T) = {tuple(input_ids.shape)} and key_mask a bool "
                             f"(B, 1, T, T_k) tensor, got {tuple(position_ids.shape)} and {tuple(key_mask.shape)}")
        return self._blocks(input_ids, position_ids, key_mask, cache, False)[0]  # (B, T, D)

    def _decoder(self, input_ids, attention_mask, cache, output_attentions, last_only=False):
        """Final-norm hidden states ``(B, T, D)`` (``(B, 1, D)`` with ``last_only``) and the attentions."""
        past = self._check_inputs(input_ids, attention_mask, cache)
        T = input_ids.shape[1]
        if attention_mask is None:  # attention adds the causal mask
            positions, mask = torch.arange(past, past + T, device=input_ids.device)[None], None  # (1, T)
        else:
            positions, mask = left_padding_mask(attention_mask, past, T)  # (B, T), (B, 1, T, T_k)
        h, attentions = self._blocks(input_ids, positions, mask, cache, output_attentions)
        if cache is not None:
            cache.advance(T)
        h = self.model.norm(h[:, -1:] if last_only else h)
        return h, attentions

    def _blocks(self, input_ids, positions, mask, cache, output_attentions):
        """Embeddings and decoder blocks: ids ``(B, T)`` at RoPE ``positions`` ``(B or 1, T)`` -> ``(B, T, D)``."""
        rows, T = positions.shape
        cos, sin = rope_cos_sin(positions.reshape(-1), self.inv_freq)
        cos, sin = cos.view(rows, 1, T, -1), sin.view(rows, 1, T, -1)  # (B or 1, 1, T, d)
        h = self.model.embed_tokens(input_ids)  # (B, T, D)
        attentions = []
        for i, layer in enumerate(self.model.layers):
            h, weights = layer(h, cos, sin, mask, cache, i, output_attentions)
            if output_attentions:
                attentions.append(weights)
        return h, tuple(attentions) if output_attentions else None
