"""A DeepSeek-V3-style decoder: MLA attention, dense first layer(s), DeepSeekMoE layers, optional MTP.

    x = Emb(t);  for each layer: x += MLA(RMSNorm(x));  x += FFN(RMSNorm(x))
    FFN = SwiGLU for the first ``first_k_dense_replace`` layers, DeepSeekMoE after;  logits = W_out RMSNorm(x)

Parameter names are HF ``DeepseekV3ForCausalLM``'s, so a checkpoint maps through
:func:`state_dict_from_hf`, whose only non-identity rule is the expert layout:

    HF  model.layers.{l}.mlp.experts.gate_up_proj [e, :I]  →  model.layers.{l}.mlp.experts.{e}.gate_proj.weight
    HF  model.layers.{l}.mlp.experts.gate_up_proj [e, I:]  →  model.layers.{l}.mlp.experts.{e}.up_proj.weight
    HF  model.layers.{l}.mlp.experts.down_proj    [e]      →  model.layers.{l}.mlp.experts.{e}.down_proj.weight
    everything else (attention, norms, dense MLP, gate.weight, gate.e_score_correction_bias,
    shared_experts, embed_tokens, lm_head): same name, same tensor.

MTP modules (``mtp.{k}``) are ours only: HF 5.x ignores the released MTP layer (``model.layers.61``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import left_padding_mask
from course_lib.checks import check_positive_ints, check_token_ids
from course_lib.kv_cache import cached_length
from course_lib.layers import RMSNorm, SwiGLU
from course_lib.models.hf import config_dict, config_from_hf, load_hf_weights

from .mla import MLACache, MLAConfig, MultiHeadLatentAttention, YarnConfig
from .moe import DeepSeekMoE, MoEConfig
from .mtp import MTPModule


@dataclass
class DeepSeekConfig:
    """DeepSeek-V3-style model hyperparameters with HF ``DeepseekV3Config`` names."""
    vocab_size: int = 256                # tokens (256: bytes)
    hidden_size: int = 64                # model width d
    intermediate_size: int = 192         # hidden width of the dense SwiGLU layers
    moe_intermediate_size: int = 32      # hidden width of one routed/shared expert
    num_hidden_layers: int = 3           # decoder layers
    num_attention_heads: int = 4         # MLA heads
    q_lora_rank: int | None = None       # query latent width d_c' (None: full-rank q_proj)
    kv_lora_rank: int = 32               # KV latent width d_c (what the cache stores)
    qk_nope_head_dim: int = 16           # per-head q/k part without RoPE
    qk_rope_head_dim: int = 8            # decoupled RoPE part (shared key)
    v_head_dim: int = 16                 # per-head value width
    n_routed_experts: int = 8            # N_r
    n_shared_experts: int = 1            # N_s
    num_experts_per_tok: int = 2         # K_r
    n_group: int = 1                     # expert groups for group-limited routing
    topk_group: int = 1                  # groups each token may use
    routed_scaling_factor: float = 1.0   # gate multiplier (V3: 2.5)
    norm_topk_prob: bool = True          # normalise gates over the selected experts
    first_k_dense_replace: int = 1       # the first k layers use a dense SwiGLU instead of MoE
    rms_norm_eps: float = 1e-6           # ε of the block and final RMSNorms (MLA's latent norms: fixed 1e-6)
    rope_theta: float = 10000.0          # RoPE base
    yarn: YarnConfig | None = None       # YaRN context extension (None: plain RoPE)
    tie_word_embeddings: bool = False    # share embed_tokens and lm_head
    num_nextn_predict_layers: int = 0    # D, MTP depth (0: no MTP)
    mtp_loss_weight: float = 0.3         # λ (V3: 0.3 for the first 10T tokens, then 0.1)
    aux_loss_alpha: float = 0.0          # α of the sequence-wise balance loss (V3: 1e-4)
    bias_update_speed: float = 1e-3      # γ of the aux-loss-free bias update (V3: 1e-3)

    def __post_init__(self):
        check_positive_ints(self, "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers")
        if not 0 <= self.first_k_dense_replace <= self.num_hidden_layers:
            raise ValueError(f"first_k_dense_replace must be in [0, num_hidden_layers={self.num_hidden_layers}], "
                             f"got {self.first_k_dense_replace}")
        if self.num_nextn_predict_layers < 0:
            raise ValueError(f"num_nextn_predict_layers must be >= 0, got {self.num_nextn_predict_layers}")
        # build the sub-configurations once so their checks run now, with their messages
        self.mla()
        self.moe()

    def mla(self) -> MLAConfig:
        """The attention part of this config as an :class:`MLAConfig`."""
        return MLAConfig(self.hidden_size, self.num_attention_heads, self.kv_lora_rank, self.qk_nope_head_dim,
                         self.qk_rope_head_dim, self.v_head_dim, self.q_lora_rank, self.rope_theta,
                         self.yarn)

    def moe(self) -> MoEConfig:
        """The MoE part of this config as a :class:`MoEConfig`."""
        return MoEConfig(self.hidden_size, self.moe_intermediate_size, self.n_routed_experts, self.num_experts_per_tok,
                         self.n_shared_experts, self.n_group, self.topk_group, self.routed_scaling_factor,
                         self.norm_topk_prob, self.bias_update_speed)

    @classmethod
    def from_hf(cls, config) -> DeepSeekConfig:
        """From a transformers ``DeepseekV3Config`` or its config.json dict (rope settings in ``rope_parameters`` in v5).

        MTP depth is set to 0: transformers builds no MTP weights (it drops the released ``layers.61``).
        """
        hf = config_dict(config)
        rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
        yarn = None
        if rope.get("rope_type", "default") == "yarn":
            if rope.get("attention_factor") is not None or rope.get("truncate", True) is not True:
                raise ValueError("only YaRN with the default attention_factor and truncate=True is supported")
            mscale, mscale_all_dim = rope.get("mscale") or 0.0, rope.get("mscale_all_dim") or 0.0
            yarn = YarnConfig(rope["factor"], rope["original_max_position_embeddings"],
                              rope.get("beta_fast") or 32.0, rope.get("beta_slow") or 1.0,
                              mscale if (mscale and mscale_all_dim) else 1.0, mscale_all_dim)
        elif rope.get("rope_type", "default") != "default":
            raise ValueError(f"rope_type {rope['rope_type']!r} is not supported (use 'default' or 'yarn')")
        if not hf.get("rope_interleave", True):
            raise ValueError("this implementation pairs RoPE channels like DeepSeek (rope_interleave=True)")
        supported = {"hidden_act": ("silu",), "attention_bias": (False,)}
        return config_from_hf(cls, hf, supported, rope_theta=rope.get("rope_theta", hf.get("rope_theta", 10000.0)),
                              yarn=yarn, num_nextn_predict_layers=0)


class DeepSeekCache(list):
    """One :class:`MLACache` per decoder layer, with the cache contract of :class:`LlamaForCausalLM`'s ``new_cache``."""

    def __init__(self, num_layers: int, batch_size: int, max_len: int):
        if batch_size <= 0 or max_len <= 0:
            raise ValueError(f"batch_size and max_len must be positive, got {batch_size} and {max_len}")
        super().__init__(MLACache() for _ in range(num_layers))
        self.batch_size, self.max_len = batch_size, max_len

    @property
    def length(self) -> int:
        """Positions cached so far."""
        return self[0].length


@dataclass
class DeepSeekOutput:
    """DeepSeekForCausalLM's output: logits, final hidden states, attentions."""
    logits: torch.Tensor                               # (B, T, V)
    hidden_states: torch.Tensor                        # (B, T, d) after the final norm
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, H, T, T_k) when asked for


class DecoderLayer(nn.Module):
    """Pre-norm block: MLA then a dense SwiGLU or DeepSeekMoE, each with a residual."""

    def __init__(self, config: DeepSeekConfig, use_moe: bool):
        super().__init__()
        self.self_attn = MultiHeadLatentAttention(config.mla())
        self.mlp = DeepSeekMoE(config.moe()) if use_moe else SwiGLU(config.hidden_size, config.intermediate_size)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x, cache: MLACache | None = None, mode: str = "naive", output_attentions: bool = False,
                positions: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """``x`` ``(B, T, d)`` → ``(x + attention + FFN (B, T, d), attention weights or None)``."""
        h, weights = self.self_attn(self.input_layernorm(x), cache, mode, output_attentions, positions, mask)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x)), weights  # (B, T, d)


class DeepSeekModel(nn.Module):
    """Embedding, decoder layers, final norm (HF ``DeepseekV3Model``)."""

    def __init__(self, config: DeepSeekConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, use_moe=i >= config.first_k_dense_replace)
                                    for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class DeepSeekForCausalLM(nn.Module):
    """The language model, plus ``num_nextn_predict_layers`` MTP modules used in :meth:`loss` and drafting."""

    def __init__(self, config: DeepSeekConfig):
        super().__init__()
        if not isinstance(config, DeepSeekConfig):
            raise TypeError(f"config must be a DeepSeekConfig, got {type(config).__name__}")
        self.config = config
        self.model = DeepSeekModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        # MTP blocks are dense decoder layers here (DeepSeek-V3's MTP layer is an MoE layer)
        self.mtp = nn.ModuleList(MTPModule(config.hidden_size, DecoderLayer(config, use_moe=False), config.rms_norm_eps)
                                 for _ in range(config.num_nextn_predict_layers))

    @classmethod
    def from_hf(cls, config, state_dict: dict[str, torch.Tensor]) -> DeepSeekForCausalLM:
        """A model from a transformers ``DeepseekV3Config`` (or dict) and ``DeepseekV3ForCausalLM`` state dict, eval mode."""
        model = cls(DeepSeekConfig.from_hf(config))  # a tied lm_head is the embedding Parameter under both names
        return load_hf_weights(model, state_dict_from_hf(state_dict, model.config))

    def new_cache(self, batch_size: int, max_len: int) -> DeepSeekCache:
        """An empty cache for ``batch_size`` sequences of at most ``max_len`` positions (one :class:`MLACache` per layer)."""
        return DeepSeekCache(len(self.model.layers), batch_size, max_len)

    def forward(self, input_ids: torch.Tensor, cache: DeepSeekCache | None = None, mode: str = "naive",
                output_attentions: bool = False, attention_mask: torch.Tensor | None = None) -> DeepSeekOutput:
        """``input_ids`` ``(B, T)`` → :class:`DeepSeekOutput`; with ``cache`` positions continue after it.

        ``attention_mask`` ``(B, past + T)``, 1 for real tokens and 0 for (left) padding, covers the cached
        positions too; positions then count real tokens only, as in :class:`LlamaForCausalLM`.
        """
        check_token_ids(input_ids, self.config.vocab_size)
        if cache is not None and (not isinstance(cache, DeepSeekCache) or len(cache) != len(self.model.layers)):
            raise ValueError(f"cache must be a DeepSeekCache from new_cache() with one MLACache per layer "
                             f"({len(self.model.layers)}), got {type(cache).__name__}")
        t = input_ids.shape[1]
        past = cached_length(cache, input_ids, None)  # raises if the cache cannot take t more positions
        positions = mask = None
        if attention_mask is not None:
            positions, mask = left_padding_mask(attention_mask, past, t)
        x = self.model.embed_tokens(input_ids)  # (B, T, d)
        attentions = []
        for i, layer in enumerate(self.model.layers):
            x, weights = layer(x, None if cache is None else cache[i], mode, output_attentions, positions, mask)
            attentions.append(weights)
        h = self.model.norm(x)
        return DeepSeekOutput(self.lm_head(h), h, tuple(attentions) if output_attentions else None)

    def mtp_logits(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """Shared output head on MTP module ``k``'s states ``(B, T, d)`` → ``(B, T, V)``."""
        return self.lm_head(self.mtp[k].norm(h))

    def moe_layers(self) -> list[DeepSeekMoE]:
        """The DeepSeekMoE feed-forward of every MoE layer, in order."""
        return [layer.mlp for layer in self.model.layers if isinstance(layer.mlp, DeepSeekMoE)]

    def loss(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss on ``tokens`` ``(B, L)``: next-token CE + λ·mean MTP CE + α·balance loss.

        Returns the total and its parts (floats, for logging).
        """
        if tokens.dim() != 2 or tokens.shape[1] < 2 + self.config.num_nextn_predict_layers:
            raise ValueError(f"tokens must be (B, L) with L >= {2 + self.config.num_nextn_predict_layers}, "
                             f"got {tuple(tokens.shape)}")
        c = self.config
        out = self(tokens[:, :-1])
        main = F.cross_entropy(out.logits.flatten(0, 1), tokens[:, 1:].flatten())
        total, parts = main, {"main": main.item()}
        if c.num_nextn_predict_layers:
            h, t = out.hidden_states, tokens.shape[1] - 1
            mtp_losses = []
            for k in range(1, c.num_nextn_predict_layers + 1):
                h = self.mtp[k - 1](h[:, :-1], self.model.embed_tokens(tokens[:, k:t]))  # (B, T-k, d)
                logits = self.mtp_logits(k - 1, h)  # (B, T-k, V), predicts t_{i+k+1}
                mtp_losses.append(F.cross_entropy(logits.flatten(0, 1), tokens[:, k + 1 :].flatten()))
                parts[f"mtp{k}"] = mtp_losses[-1].item()
            total = total + c.mtp_loss_weight * torch.stack(mtp_losses).mean()
        if c.aux_loss_alpha:
            balance = sum(moe.balance_loss(c.aux_loss_alpha) for moe in self.moe_layers())
            parts["balance"] = balance.item()
            total = total + balance
        return total, parts

    def update_bias(self) -> None:
        """Aux-loss-free balancing step for every MoE layer (call after ``optimizer.step()``)."""
        for moe in self.moe_layers():
            moe.update_bias()



def state_dict_from_hf(hf_state_dict: dict[str, torch.Tensor], config: DeepSeekConfig) -> dict[str, torch.Tensor]:
    """Apply the name table in the module docstring (split the fused experts, keep every other name)."""
    out = {}
    inter = config.moe_intermediate_size
    for name, tensor in hf_state_dict.items():
        if name.endswith("mlp.experts.gate_up_proj"):
            prefix = name[: -len("gate_up_proj")]
            if tensor.shape != (config.n_routed_experts, 2 * inter, config.hidden_size):
                raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected "
                                 f"{(config.n_routed_experts, 2 * inter, config.hidden_size)}")
            for e in range(config.n_routed_experts):
                out[f"{prefix}{e}.gate_proj.weight"] = tensor[e, :inter]
                out[f"{prefix}{e}.up_proj.weight"] = tensor[e, inter:]
        elif name.endswith("mlp.experts.down_proj"):
            prefix = name[: -len("down_proj")]
            for e in range(config.n_routed_experts):
                out[f"{prefix}{e}.down_proj.weight"] = tensor[e]
        else:
            out[name] = tensor
    return out
