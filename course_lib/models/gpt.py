"""GPT-2, the decoder-only Transformer (Radford et al. 2019), with HF ``GPT2LMHeadModel`` names.

    h⁰ = E_tok[x] + E_pos[t]                                   learned absolute positions
    a  = hˡ⁻¹ + Attn(LN₁(hˡ⁻¹))      (causal: token t sees ≤ t)  pre-LN (GPT-2 §2.3)
    hˡ = a + W₂ GELU_tanh(W₁ LN₂(a))
    logits = LN_f(hᴸ) E_tokᵀ                                    head tied to the embeddings

Parameter names are HF's, but HF GPT-2 stores its projections as ``Conv1D`` whose weight is
``(in, out)`` — the transpose of ``nn.Linear``'s ``(out, in)``. :data:`HF_CONV1D` names them and
:func:`load_hf_state_dict` transposes exactly those; nothing else is renamed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import generation
from course_lib.attention import causal_mask, scaled_dot_product_attention
from course_lib.models.checks import check_token_ids

# HF GPT-2 name suffix -> how to convert: these Conv1D weights are (in, out) and get transposed.
HF_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
HF_IGNORED = ("lm_head.weight", ".attn.bias", ".attn.masked_bias")  # tied head; old causal-mask buffers


@dataclass
class GPTConfig:
    vocab_size: int = 50257           # BPE vocabulary size
    n_positions: int = 1024           # longest context (learned positions)
    n_embd: int = 768                 # d_model
    n_layer: int = 12                 # decoder blocks
    n_head: int = 12                  # heads; head dim = n_embd / n_head
    layer_norm_epsilon: float = 1e-5  # LayerNorm ε
    dropout: float = 0.1              # residual, embedding and attention dropout (training only)

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} must be divisible by n_head {self.n_head}")
        for f in ("vocab_size", "n_positions", "n_embd", "n_layer"):
            if getattr(self, f) <= 0:
                raise ValueError(f"GPTConfig.{f} must be positive, got {getattr(self, f)}")


@dataclass
class GPTOutput:
    logits: torch.Tensor                                # (B, T, V)
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, H, T, T) when asked for


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)  # q, k, v in one matmul
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.attn_dropout = cfg.dropout
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, need_weights: bool):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2)  # (B, H, T, Dh)
                   for t in self.c_attn(x).split(C, dim=-1))
        p = self.attn_dropout if self.training else 0.0
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask=causal_mask(T, device=x.device), dropout_p=p)
        else:  # fused kernel, same maths (tested against the explicit path)
            out, weights = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p), None
        out = out.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(out)), weights


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))  # GPT-2's "gelu_new"


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg)

    def forward(self, x, need_weights):
        a, weights = self.attn(self.ln_1(x), need_weights)
        x = x + a
        return x + self.mlp(self.ln_2(x)), weights


class GPT(nn.Module):
    """GPT-2 language model: ``forward(input_ids)`` → next-token logits at every position."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.transformer.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.transformer.drop = nn.Dropout(cfg.dropout)
        self.transformer.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.transformer.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        """GPT-2 init: N(0, 0.02) for weights, zero biases (GPT-2's residual 1/√(2L) scaling left out)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor, output_attentions: bool = False) -> GPTOutput:
        cfg = self.config
        check_token_ids(input_ids, cfg.vocab_size, "input_ids", cfg.n_positions)
        T = input_ids.shape[1]
        tr = self.transformer
        pos = torch.arange(T, device=input_ids.device)  # (T,)
        x = tr.drop(tr.wte(input_ids) + tr.wpe(pos))  # (B, T, C)
        attentions = []
        for block in tr.h:
            x, weights = block(x, output_attentions)
            attentions.append(weights)
        logits = tr.ln_f(x) @ tr.wte.weight.T  # (B, T, V), tied head
        return GPTOutput(logits, tuple(attentions) if output_attentions else None)

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
                 **kwargs) -> torch.Tensor:
        """Append ``max_new_tokens`` tokens, greedy (``temperature=0``) or sampled, through
        :func:`course_lib.generation.generate`; no KV cache: each step recomputes the last
        ``n_positions`` tokens (:class:`course_lib.generation.Recompute`)."""
        return generation.generate(generation.Recompute(self, window=self.config.n_positions), input_ids,
                                   max_new_tokens, temperature=temperature, **kwargs)


def load_hf_state_dict(model: GPT, state_dict: dict[str, torch.Tensor]) -> GPT:
    """Load HF ``GPT2LMHeadModel`` weights: transpose :data:`HF_CONV1D`, drop :data:`HF_IGNORED`. Strict."""
    head, wte = state_dict.get("lm_head.weight"), state_dict.get("transformer.wte.weight")
    if head is not None and wte is not None and not torch.equal(head, wte):
        raise ValueError("lm_head.weight differs from transformer.wte.weight: this GPT needs a tied head")
    sd = {}
    for name, tensor in state_dict.items():
        if name == HF_IGNORED[0] or name.endswith(HF_IGNORED[1:]):
            continue
        sd[name] = tensor.t() if name.endswith(HF_CONV1D) else tensor
    model.load_state_dict(sd, strict=True)
    return model
