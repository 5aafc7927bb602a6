"""GPT-2, the decoder-only Transformer (Radford et al. 2019), with HF ``GPT2LMHeadModel`` names.

    h⁰ = E_tok[x] + E_pos[t]                                   learned absolute positions
    a  = hˡ⁻¹ + Attn(LN₁(hˡ⁻¹))      (causal: token t sees ≤ t)  pre-LN (GPT-2 §2.3)
    hˡ = a + W₂ GELU_tanh(W₁ LN₂(a))
    logits = LN_f(hᴸ) E_tokᵀ                                    head tied to the embeddings

Parameter names are HF's, but HF GPT-2 stores its projections as ``Conv1D`` whose weight is
``(in, out)`` — the transpose of ``nn.Linear``'s ``(out, in)``. :data:`HF_CONV1D` names them and
:meth:`GPT.from_hf` transposes exactly those; nothing else is renamed. :meth:`GPTConfig.from_hf` refuses
the GPT-2 settings this model does not compute (another activation, unscaled or layer-scaled
attention, an MLP width other than 4·n_embd) instead of returning other numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import generation
from course_lib.attention import attend, left_padding_mask
from course_lib.checks import check_positive_ints, check_token_ids
from course_lib.kv_cache import KVCache, cached_length
from course_lib.models.hf import config_dict, config_from_hf, load_hf_weights

# HF GPT-2 name suffix -> how to convert: these Conv1D weights are (in, out) and get transposed.
HF_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
HF_IGNORED = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers of older GPT-2 checkpoints


@dataclass
class GPTConfig:
    """GPT-2 hyperparameters with HF ``GPT2Config`` field names."""
    vocab_size: int = 50257           # BPE vocabulary size
    n_positions: int = 1024           # longest context (learned positions)
    n_embd: int = 768                 # d_model
    n_layer: int = 12                 # decoder blocks
    n_head: int = 12                  # heads; head dim = n_embd / n_head
    layer_norm_epsilon: float = 1e-5  # LayerNorm ε
    dropout: float = 0.1              # residual, embedding and attention dropout (training only)

    def __post_init__(self):
        check_positive_ints(self, "vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} must be divisible by n_head {self.n_head}")

    # the generic names of HF ``GPT2Config.attribute_map``, read by :class:`course_lib.kv_cache.KVCache`
    hidden_size = property(lambda self: self.n_embd, doc="d_model (HF alias of ``n_embd``)")
    num_attention_heads = property(lambda self: self.n_head, doc="heads (HF alias of ``n_head``)")
    num_hidden_layers = property(lambda self: self.n_layer, doc="blocks (HF alias of ``n_layer``)")
    max_position_embeddings = property(lambda self: self.n_positions, doc="context (HF alias of ``n_positions``)")

    @classmethod
    def from_hf(cls, config) -> GPTConfig:
        """From a transformers ``GPT2Config`` or its config.json dict; refuses settings this GPT-2 does not compute."""
        hf = config_dict(config)
        supported = {"activation_function": ("gelu_new", "gelu_pytorch_tanh"), "scale_attn_weights": (True,),
                     "scale_attn_by_inverse_layer_idx": (False,), "n_inner": (None, 4 * hf.get("n_embd", 768)),
                     "reorder_and_upcast_attn": (False,), "add_cross_attention": (False,),
                     "tie_word_embeddings": (True,)}
        return config_from_hf(cls, hf, supported, dropout=hf.get("resid_pdrop", 0.1))


@dataclass
class GPTOutput:
    """GPT's output: next-token logits and attentions."""
    logits: torch.Tensor                                # (B, T, V)
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, H, T, T) when asked for


class CausalSelfAttention(nn.Module):
    """GPT-2 masked multi-head self-attention, q/k/v from one ``c_attn`` projection."""
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, need_weights: bool, mask: torch.Tensor | None = None,
                cache: KVCache | None = None, layer: int = 0):
        """``x`` ``(B, T, C)`` → ``(attention output (B, T, C), weights (B, H, T, T_k) or None)``; causal unless ``mask``.

        With ``cache`` the new keys/values are appended to layer ``layer``'s and the queries attend to all ``T_k``.
        """
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2)  # (B, H, T, Dh)
                   for t in self.c_attn(x).split(C, dim=-1))
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, H, T_k, Dh)
        p = self.attn_dropout if self.training else 0.0
        out, weights = attend(q, k, v, mask, causal=mask is None, need_weights=need_weights, dropout_p=p)  # (B, H, T, Dh)
        out = out.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(out)), weights


class MLP(nn.Module):
    """GPT-2 feed-forward: c_fc → GELU (tanh) → c_proj."""
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        """W₂ GELU_tanh(W₁ x) with dropout."""
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))  # GPT-2's "gelu_new"


class Block(nn.Module):
    """One pre-LN GPT-2 block: x + Attn(LN₁ x), then + MLP(LN₂ ·)."""
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x, need_weights, mask=None, cache=None, layer=0):
        """``x`` ``(B, T, C)`` → ``(block output, attention weights or None)``."""
        a, weights = self.attn(self.ln_1(x), need_weights, mask, cache, layer)
        x = x + a
        return x + self.mlp(self.ln_2(x)), weights


class GPT(nn.Module):
    """GPT-2 language model: ``forward(input_ids)`` → next-token logits at every position."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.transformer.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.transformer.drop = nn.Dropout(config.dropout)
        self.transformer.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.transformer.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.apply(self._init_weights)

    @classmethod
    def from_hf(cls, config, state_dict: dict[str, torch.Tensor]) -> GPT:
        """A GPT from a transformers GPT-2 config and ``GPT2LMHeadModel`` state dict (Conv1D weights transposed), in eval mode."""
        sd = {name: tensor.t() if name.endswith(HF_CONV1D) else tensor for name, tensor in state_dict.items()
              if not name.endswith(HF_IGNORED)}
        return load_hf_weights(cls(GPTConfig.from_hf(config)), sd, tied={"lm_head.weight": "transformer.wte.weight"})

    @staticmethod
    def _init_weights(module):
        """GPT-2 init: N(0, 0.02) for weights, zero biases (GPT-2's residual 1/√(2L) scaling left out)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor, output_attentions: bool = False,
                attention_mask: torch.Tensor | None = None, cache: KVCache | None = None) -> GPTOutput:
        """``input_ids`` ``(B, T)`` → :class:`GPTOutput` (logits ``(B, T, V)``, tied head).

        ``attention_mask`` ``(B, past + T)`` (1 = token, 0 = left padding): positions count real tokens only.
        ``cache`` (from :meth:`new_cache`) holds the earlier keys/values and is extended in place.
        """
        h, attentions = self._decoder(input_ids, attention_mask, cache, output_attentions)
        return GPTOutput(h @ self.transformer.wte.weight.T, attentions)  # (B, T, V), tied head

    def new_cache(self, batch_size: int, max_len: int) -> KVCache:
        """An empty :class:`course_lib.kv_cache.KVCache` ``(n_layer, B, n_head, max_len, n_embd / n_head)``."""
        weight = self.transformer.wte.weight
        return KVCache(self.config, batch_size, max_len, dtype=weight.dtype, device=weight.device)

    def decode_step(self, input_ids: torch.Tensor, cache: KVCache | None,
                    attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache | None]:
        """:class:`course_lib.generation.Decoder` step: logits ``(B, V)`` of the last position only."""
        h, _ = self._decoder(input_ids, attention_mask, cache, False, last_only=True)
        return h[:, -1] @ self.transformer.wte.weight.T, cache  # (B, V)

    def _decoder(self, input_ids, attention_mask, cache, output_attentions, last_only=False):
        """``ln_f`` hidden states ``(B, T, C)`` (``(B, 1, C)`` with ``last_only``) and the attentions."""
        config, tr = self.config, self.transformer
        check_token_ids(input_ids, config.vocab_size, "input_ids", config.n_positions)
        past = cached_length(cache, input_ids, config.n_positions, "n_positions")
        T = input_ids.shape[1]
        if attention_mask is None:  # the attention adds the causal mask
            pos, mask = torch.arange(past, past + T, device=input_ids.device), None  # (T,)
        else:
            pos, mask = left_padding_mask(attention_mask, past, T)  # (B, T), (B, 1, T, past + T)
        x = tr.drop(tr.wte(input_ids) + tr.wpe(pos))  # (B, T, C)
        attentions = []
        for i, block in enumerate(tr.h):
            x, weights = block(x, output_attentions, mask, cache, i)
            attentions.append(weights)
        if cache is not None:
            cache.advance(T)
        return tr.ln_f(x[:, -1:] if last_only else x), tuple(attentions) if output_attentions else None

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
                 **kwargs) -> torch.Tensor:
        """Append ``max_new_tokens`` tokens, greedy (``temperature=0``) or sampled, through
        :func:`course_lib.generation.generate` with a KV cache (:meth:`decode_step`).

        Past the ``n_positions`` learned positions a cache cannot go on (every cached key would
        shift position), so a longer generation recomputes the last ``n_positions`` tokens each step
        (:class:`course_lib.generation.Recompute` with a window, nanoGPT's crop).
        """
        window = self.config.n_positions
        too_long = torch.is_tensor(input_ids) and isinstance(max_new_tokens, int) \
            and input_ids.shape[-1] + max_new_tokens > window
        decoder = generation.Recompute(self, window=window) if too_long else self  # generate checks the inputs
        return generation.generate(decoder, input_ids, max_new_tokens, temperature=temperature, **kwargs)
