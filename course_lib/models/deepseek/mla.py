"""Multi-head Latent Attention, MLA (DeepSeek-V2 §2.1, DeepSeek-V3 §2.1.1).

Keys and values of all heads are rebuilt from one small latent vector per token,

    c_t^KV = RMSNorm(W^DKV h_t)                       (d_c = kv_lora_rank)
    k_t^C  = W^UK c_t^KV,   v_t^C = W^UV c_t^KV       (per head: d_h^nope, d_h^v)
    k_t^R  = RoPE(W^KR h_t)                           (d_h^R = qk_rope_head_dim, ONE key shared by all heads)
    q_t    = W^UQ RMSNorm(W^DQ h_t)  (or W^Q h_t when q_lora_rank is None), split into q^C and RoPE(q^R)
    o_t,i  = Σ_j softmax_j( (q^C_t,i·k^C_j,i + q^R_t,i·k^R_j) · s ) v^C_j,i ,   u_t = W^O [o_t,1; …; o_t,H]

with s = 1/√(d_nope + d_R), times mscale² under YaRN (DeepSeek-V3 ``inference/model.py``).

Two inference paths compute the same numbers:

- ``naive``: expand K and V for every head and cache them, H·(d_nope + d_R + d_v) numbers per token;
- ``absorbed``: cache only [c^KV; k^R], d_c + d_R numbers per token, fold W^UK into the query
  (q^C·W^UK c = (W^UKᵀ q^C)·c) and apply W^UV after attention. All heads then attend to the same
  single-"head" cache: MLA at inference time is multi-query attention with head size d_c + d_R.

Parameter names are HF ``DeepseekV3Attention``'s (``q_a_proj``, ``kv_a_proj_with_mqa``, ``kv_b_proj``…).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from course_lib.attention import causal_mask, scaled_dot_product_attention
from course_lib.checks import check_hidden, check_positive_ints
from course_lib.layers import RMSNorm, apply_rope, rope_cos_sin, rope_inv_freq

MODES = ("naive", "absorbed")
# ε of the latent RMSNorms (q_a_layernorm, kv_a_layernorm): fixed, not config.rms_norm_eps, as in HF
# ``DeepseekV3Attention`` (``DeepseekV3RMSNorm(kv_lora_rank)``) and DeepSeek-V3 ``inference/model.py``.
LATENT_NORM_EPS = 1e-6


@dataclass
class YarnConfig:
    """YaRN context-extension settings (Peng et al. 2023; DeepSeek-V3 ``rope_scaling``)."""
    factor: float                          # context extension factor s (DeepSeek-V3: 40)
    original_max_position_embeddings: int  # pre-training context length (DeepSeek-V3: 4096)
    beta_fast: float = 32.0                # rotations above which a frequency is kept as is
    beta_slow: float = 1.0                 # rotations below which a frequency is divided by s
    mscale: float = 1.0                    # numerator mscale of the cos/sin factor (HF attention_factor)
    mscale_all_dim: float = 1.0            # mscale of the softmax scale correction (squared)


def yarn_get_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN attention temperature: 0.1·mscale·ln(s) + 1 for s > 1, else 1 (Peng et al. 2023, §3.4)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def yarn_inv_freq(dim: int, base: float, yarn: YarnConfig) -> torch.Tensor:
    """YaRN "NTK-by-parts" frequencies: high frequencies kept, low ones divided by s, a linear ramp between.

    Matches DeepSeek-V3 ``precompute_freqs_cis`` and HF ``_compute_yarn_parameters`` (truncate=True).
    """
    freqs = rope_inv_freq(dim, base)  # (d/2,)

    def correction_dim(rotations: float) -> float:
        return dim * math.log(yarn.original_max_position_embeddings / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(correction_dim(yarn.beta_fast)), 0)
    high = min(math.ceil(correction_dim(yarn.beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # 1: extrapolate (keep θ_i), 0: interpolate (θ_i / s)
    return freqs / yarn.factor * (1 - keep) + freqs * keep


@dataclass
class MLAConfig:
    """Multi-head latent attention sizes (DeepSeek-V2 §2.1 symbols in the field comments)."""
    hidden_size: int             # model width d
    num_heads: int               # attention heads n_h
    kv_lora_rank: int            # d_c, width of the cached latent c^KV
    qk_nope_head_dim: int        # d_h^nope, per-head query/key part without position
    qk_rope_head_dim: int        # d_h^R, decoupled RoPE part (the key part is shared by all heads)
    v_head_dim: int              # d_h^v, per-head value width
    q_lora_rank: int | None = None  # d_c', query latent width; None: a full-rank q_proj (V2-Lite)
    rope_theta: float = 10000.0  # RoPE base
    yarn: YarnConfig | None = None  # YaRN context extension; None: plain RoPE

    def __post_init__(self):
        check_positive_ints(self, "hidden_size", "num_heads", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                            "v_head_dim")
        if self.q_lora_rank is not None:
            check_positive_ints(self, "q_lora_rank")
        if self.qk_rope_head_dim % 2:
            raise ValueError(f"MLAConfig.qk_rope_head_dim must be even (RoPE rotates pairs), got {self.qk_rope_head_dim}")

    @property
    def qk_head_dim(self) -> int:
        """d_h^nope + d_h^R, the query/key width per head."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def softmax_scale(self) -> float:
        """1/√(d_nope + d_R), times mscale(s, mscale_all_dim)² under YaRN."""
        scale = self.qk_head_dim ** -0.5
        if self.yarn is not None:
            scale *= yarn_get_mscale(self.yarn.factor, self.yarn.mscale_all_dim) ** 2
        return scale


class MLACache:
    """One MLA layer's cache: tensors ``(..., T, d)`` appended along T into a buffer that doubles when full."""

    def __init__(self):
        self.buffers: list[torch.Tensor] | None = None
        self.length = 0

    def update(self, *new: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Append the new ``(..., t, d)`` tensors and return views of everything cached, ``(..., T, d)``."""
        if self.buffers is not None and (len(new) != len(self.buffers) or any(
                x.shape[:-2] != b.shape[:-2] or x.shape[-1] != b.shape[-1] for x, b in zip(new, self.buffers))):
            raise ValueError(f"this cache holds {[tuple(b.shape) for b in self.buffers]} (T on dim -2) and cannot take "
                             f"{[tuple(x.shape) for x in new]}; was it filled in the other mode?")
        t = new[0].shape[-2]
        if self.buffers is None or self.length + t > self.buffers[0].shape[-2]:
            capacity = max(2 * self.length, self.length + t, 16)
            grown = [x.new_empty(*x.shape[:-2], capacity, x.shape[-1]) for x in new]
            if self.buffers is not None:
                for g, b in zip(grown, self.buffers):
                    g[..., : self.length, :] = b[..., : self.length, :]
            self.buffers = grown
        for buf, x in zip(self.buffers, new):
            buf[..., self.length : self.length + t, :] = x
        self.length += t
        return tuple(buf[..., : self.length, :] for buf in self.buffers)

    def elements_per_token(self) -> int:
        """Numbers stored per cached token (batch 1)."""
        if self.buffers is None:
            return 0
        return sum(b[:1].numel() // b.shape[-2] for b in self.buffers)


class MultiHeadLatentAttention(nn.Module):
    """MLA with HF ``DeepseekV3Attention`` parameter names and two cache layouts (see module docstring)."""

    def __init__(self, config: MLAConfig):
        super().__init__()
        if not isinstance(config, MLAConfig):
            raise TypeError(f"config must be an MLAConfig, got {type(config).__name__}")
        self.config = c = config
        if c.q_lora_rank is None:
            self.q_proj = nn.Linear(c.hidden_size, c.num_heads * c.qk_head_dim, bias=False)  # W^Q
        else:
            self.q_a_proj = nn.Linear(c.hidden_size, c.q_lora_rank, bias=False)  # W^DQ
            self.q_a_layernorm = RMSNorm(c.q_lora_rank, LATENT_NORM_EPS)
            self.q_b_proj = nn.Linear(c.q_lora_rank, c.num_heads * c.qk_head_dim, bias=False)  # W^UQ; W^QR
        self.kv_a_proj_with_mqa = nn.Linear(c.hidden_size, c.kv_lora_rank + c.qk_rope_head_dim, bias=False)  # W^DKV; W^KR
        self.kv_a_layernorm = RMSNorm(c.kv_lora_rank, LATENT_NORM_EPS)
        self.kv_b_proj = nn.Linear(c.kv_lora_rank, c.num_heads * (c.qk_nope_head_dim + c.v_head_dim), bias=False)  # W^UK; W^UV
        self.o_proj = nn.Linear(c.num_heads * c.v_head_dim, c.hidden_size, bias=False)  # W^O
        inv_freq = rope_inv_freq(c.qk_rope_head_dim, c.rope_theta) if c.yarn is None else \
            yarn_inv_freq(c.qk_rope_head_dim, c.rope_theta, c.yarn)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        # HF multiplies cos/sin by mscale(s, mscale)/mscale(s, mscale_all_dim): 1.0 for DeepSeek-V3 (both 1.0)
        self.rope_factor = 1.0 if c.yarn is None else \
            yarn_get_mscale(c.yarn.factor, c.yarn.mscale) / yarn_get_mscale(c.yarn.factor, c.yarn.mscale_all_dim)

    def _query(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        q = self.q_proj(x) if c.q_lora_rank is None else self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x)))
        return q.view(*x.shape[:2], c.num_heads, c.qk_head_dim).transpose(1, 2)  # (B, H, T, d_nope + d_R)

    def forward(
        self,
        x: torch.Tensor,
        cache: MLACache | None = None,
        mode: str = "naive",
        output_attentions: bool = False,
        positions: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``(B, T, d)`` → ``(out (B, T, d), weights (B, H, T, T_k) or None)``.

        Positions continue from ``cache.length``; attention is causal. ``mode`` picks what is cached
        and how scores are computed (``"naive"`` or ``"absorbed"``); a cache must keep one mode.
        A left-padded batch passes ``positions`` ``(B, T)`` and a boolean ``mask`` ``(B, 1, T, T_k)``
        from :func:`course_lib.attention.left_padding_mask` instead.
        """
        c = self.config
        check_hidden(x, c.hidden_size)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if cache is not None and not isinstance(cache, MLACache):
            raise TypeError(f"cache must be an MLACache or None, got {type(cache).__name__}")
        bsz, t, _ = x.shape
        start = 0 if cache is None else cache.length
        if positions is None:
            cos, sin = rope_cos_sin(torch.arange(start, start + t, device=x.device), self.inv_freq)  # (T, d_R)
        else:
            cos, sin = rope_cos_sin(positions.reshape(-1), self.inv_freq)
            cos, sin = cos.view(bsz, 1, t, -1), sin.view(bsz, 1, t, -1)  # (B, 1, T, d_R)
        cos, sin = cos * self.rope_factor, sin * self.rope_factor

        q = self._query(x)  # (B, H, T, d_nope + d_R)
        q_nope, q_pe = q.split([c.qk_nope_head_dim, c.qk_rope_head_dim], dim=-1)
        q_pe = apply_rope(q_pe, cos, sin, interleaved=True)  # (B, H, T, d_R)
        c_kv, k_pe = self.kv_a_proj_with_mqa(x).split([c.kv_lora_rank, c.qk_rope_head_dim], dim=-1)
        c_kv = self.kv_a_layernorm(c_kv)  # (B, T, d_c)
        k_pe = apply_rope(k_pe[:, None], cos, sin, interleaved=True)  # (B, 1, T, d_R), shared by all heads
        if mask is None:
            mask = causal_mask(t, start + t, device=x.device)  # (T, T_k)

        if mode == "naive":
            out, weights = self._naive(q_nope, q_pe, c_kv, k_pe, cache, mask)
        else:
            out, weights = self._absorbed(q_nope, q_pe, c_kv, k_pe, cache, mask)
        out = self.o_proj(out.transpose(1, 2).reshape(bsz, t, c.num_heads * c.v_head_dim))  # (B, T, d)
        return out, (weights if output_attentions else None)

    def _naive(self, q_nope, q_pe, c_kv, k_pe, cache, mask):
        """Expand per-head K = [W^UK c; k^R] and V = W^UV c, cache them, attend as in MHA."""
        k, v = self.expand_latent(c_kv, k_pe)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, H, T_k, ·)
        q = torch.cat([q_nope, q_pe], dim=-1)  # (B, H, T, d_nope + d_R)
        return scaled_dot_product_attention(q, k, v, mask=mask, scale=self.config.softmax_scale)  # (B, H, T, d_v)

    def expand_latent(self, c_kv: torch.Tensor, k_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-head K = [W^UK c^KV; k^R] and V = W^UV c^KV from ``c_kv`` ``(B, T, d_c)`` and ``k_pe`` ``(B, 1, T, d_R)``."""
        c = self.config
        bsz, t = c_kv.shape[:2]
        kv = self.kv_b_proj(c_kv).view(bsz, t, c.num_heads, c.qk_nope_head_dim + c.v_head_dim).transpose(1, 2)
        k_nope, v = kv.split([c.qk_nope_head_dim, c.v_head_dim], dim=-1)  # (B, H, T, d_nope), (B, H, T, d_v)
        return torch.cat([k_nope, k_pe.expand(-1, c.num_heads, -1, -1)], dim=-1), v  # (B, H, T, d_nope + d_R)

    def _absorbed(self, q_nope, q_pe, c_kv, k_pe, cache, mask):
        """Cache [c^KV; k^R] only; q^C W^UK acts on the latent directly, W^UV is applied after attention."""
        c = self.config
        bsz, h, t, _ = q_nope.shape
        w_kv_b = self.kv_b_proj.weight.view(h, c.qk_nope_head_dim + c.v_head_dim, c.kv_lora_rank)
        w_uk, w_uv = w_kv_b.split([c.qk_nope_head_dim, c.v_head_dim], dim=1)  # (H, d_nope, d_c), (H, d_v, d_c)
        # one batched matmul per head over all B·T query rows (einsum would copy the weights to permute them)
        q_rows = q_nope.transpose(0, 1).reshape(h, bsz * t, c.qk_nope_head_dim)  # (H, B·T, d_nope)
        q_latent = (q_rows @ w_uk).view(h, bsz, t, c.kv_lora_rank).transpose(0, 1)  # (B, H, T, d_c)
        latent = torch.cat([c_kv, k_pe[:, 0]], dim=-1)  # (B, T, d_c + d_R)
        if cache is not None:
            (latent,) = cache.update(latent)  # (B, T_k, d_c + d_R)
        t_k = latent.shape[1]
        # every head attends to the same single-head cache: fold heads into query rows (MQA with one KV head)
        q = torch.cat([q_latent, q_pe], dim=-1).reshape(bsz, 1, h * t, -1)  # (B, 1, H·T, d_c + d_R)
        k = latent[:, None]  # (B, 1, T_k, d_c + d_R)
        v = latent[:, None, :, : c.kv_lora_rank]  # (B, 1, T_k, d_c)
        mask = mask.repeat(*[1] * (mask.dim() - 2), h, 1)  # (…, H·T, T_k): row h·T + t is query t of head h
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask, scale=c.softmax_scale)
        out = out.view(bsz, h, t, c.kv_lora_rank).transpose(0, 1).reshape(h, bsz * t, c.kv_lora_rank)  # (H, B·T, d_c)
        out = (out @ w_uv.transpose(1, 2)).view(h, bsz, t, c.v_head_dim).transpose(0, 1)  # (B, H, T, d_v)
        return out, weights.view(bsz, h, t, t_k)


def kv_cache_elements_per_token(
    kind: str, num_layers: int, num_heads: int, head_dim: int,
    num_kv_groups: int | None = None, kv_lora_rank: int | None = None, qk_rope_head_dim: int | None = None,
) -> int:
    """KV-cache elements per token, DeepSeek-V2 Table 1.

    MHA 2·n_h·d_h·l, GQA 2·n_g·d_h·l, MQA 2·d_h·l, MLA (d_c + d_h^R)·l
    (= 4.5·d_h·l for DeepSeek-V2's d_c = 4·d_h, d_h^R = d_h/2).
    """
    for name, value in (("num_layers", num_layers), ("num_heads", num_heads), ("head_dim", head_dim)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if kind == "MHA":
        return 2 * num_heads * head_dim * num_layers
    if kind == "GQA":
        if not isinstance(num_kv_groups, int) or not 0 < num_kv_groups <= num_heads or num_heads % num_kv_groups:
            raise ValueError(f"GQA needs num_kv_groups dividing num_heads={num_heads}, got {num_kv_groups!r}")
        return 2 * num_kv_groups * head_dim * num_layers
    if kind == "MQA":
        return 2 * head_dim * num_layers
    if kind == "MLA":
        if not isinstance(kv_lora_rank, int) or kv_lora_rank <= 0:
            raise ValueError(f"MLA needs a positive int kv_lora_rank, got {kv_lora_rank!r}")
        if not isinstance(qk_rope_head_dim, int) or qk_rope_head_dim < 0:
            raise ValueError(f"MLA needs a non-negative int qk_rope_head_dim, got {qk_rope_head_dim!r}")
        return (kv_lora_rank + qk_rope_head_dim) * num_layers
    raise ValueError(f"kind must be one of 'MHA', 'GQA', 'MQA', 'MLA', got {kind!r}")
