"""Linear attention and the RWKV-4 time mixing: one model, two forms (parallel for training, recurrent for inference).

**Linear attention** (Katharopoulos et al. 2020, "Transformers are RNNs", §3.2 and §3.4). Replace
softmax(q·k) by a kernel φ(q)ᵀφ(k) with φ(x) = elu(x) + 1 > 0. The causal output

    o_t = φ(q_t)ᵀ Σ_{s≤t} φ(k_s) v_sᵀ  /  φ(q_t)ᵀ Σ_{s≤t} φ(k_s)

is computed either in parallel as a masked (T, T) matrix product, or as an RNN whose state is
S_t = S_{t-1} + φ(k_t) v_tᵀ (d × d_v) and z_t = z_{t-1} + φ(k_t) (d): O(1) memory per token.

**RWKV-4 WKV** (Peng et al. 2023, "RWKV: Reinventing RNNs for the Transformer Era", §3.1.1 eq. 14–16),
per channel c, with decay w = exp(time_decay) > 0 and bonus u = time_first for the current token:

    wkv_t = (Σ_{i<t} e^{-(t-1-i)w + k_i} v_i + e^{u+k_t} v_t) / (Σ_{i<t} e^{-(t-1-i)w + k_i} + e^{u+k_t})

The parallel form is a softmax over positions i ≤ t of the logits −(t−1−i)w + k_i (u + k_t on the
diagonal): attention where the position decay replaces q·k. The recurrent form keeps
(numerator, denominator, running max) per channel, as the official kernel and
``transformers.models.rwkv.modeling_rwkv.rwkv_linear_attention_cpu`` do. :class:`RWKVTimeMix`
uses the parameter names of HF ``RwkvSelfAttention`` (``time_decay``, ``time_first``, ``time_mix_key``,
``key``, ``value``, ``receptance``, ``output``), so its state dict loads unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks import check_positive_ints, check_sequence_input


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = elu(x) + 1, positive so the normaliser never vanishes (Katharopoulos et al. §3.2.1)."""
    return F.elu(x) + 1.0


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor of shape (..., T, d)")
        if t.dim() < 2:
            raise ValueError(f"{name} must have shape (..., T, d), got {tuple(t.shape)}")
    if q.shape[:-1] != k.shape[:-1] or q.shape[-1] != k.shape[-1] or k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"q, k must be (..., T, d) and v (..., T, d_v) with the same leading dims, "
                         f"got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")


def linear_attention_parallel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Causal linear attention, training form: ``q, k`` (..., T, d), ``v`` (..., T, d_v) → (..., T, d_v)."""
    _check_qkv(q, k, v)
    scores = elu_feature_map(q) @ elu_feature_map(k).transpose(-2, -1)  # (..., T, T), all > 0
    scores = scores.tril()  # causal: query t sees keys s ≤ t (no softmax, so masking is a multiply)
    return (scores @ v) / (scores.sum(-1, keepdim=True) + eps)  # (..., T, d_v)


def linear_attention_recurrent(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor] | None = None, eps: float = 1e-6,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Causal linear attention, inference form, one token at a time.

    Returns ``(output (..., T, d_v), state)`` with ``state = (S (..., d, d_v), z (..., d))``; pass the
    state back in to continue the sequence.
    """
    _check_qkv(q, k, v)
    fq, fk = elu_feature_map(q), elu_feature_map(k)
    if state is None:
        s = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])  # (..., d, d_v)
        z = q.new_zeros(*q.shape[:-2], q.shape[-1])  # (..., d)
    else:
        s, z = state
    outputs = []
    for t in range(q.shape[-2]):
        s = s + fk[..., t, :, None] * v[..., t, None, :]  # S_t = S_{t-1} + φ(k_t) v_tᵀ
        z = z + fk[..., t, :]  # z_t = z_{t-1} + φ(k_t)
        num = (fq[..., t, None, :] @ s).squeeze(-2)  # (..., d_v)
        den = (fq[..., t, :] * z).sum(-1, keepdim=True)  # (..., 1)
        outputs.append(num / (den + eps))
    return torch.stack(outputs, dim=-2), (s, z)


def _check_wkv(time_decay: torch.Tensor, time_first: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if k.dim() != 3 or k.shape != v.shape:
        raise ValueError(f"k and v must both have shape (B, T, C), got {tuple(k.shape)} and {tuple(v.shape)}")
    c = k.shape[-1]
    if time_decay.shape != (c,) or time_first.shape != (c,):
        raise ValueError(f"time_decay and time_first must have shape ({c},) (one per channel), "
                         f"got {tuple(time_decay.shape)} and {tuple(time_first.shape)}")


def rwkv_wkv_parallel(time_decay: torch.Tensor, time_first: torch.Tensor, k: torch.Tensor, v: torch.Tensor
                      ) -> torch.Tensor:
    """RWKV-4 WKV for a whole sequence at once: ``k, v`` (B, T, C) → (B, T, C), O(T²) memory."""
    _check_wkv(time_decay, time_first, k, v)
    t = k.shape[1]
    pos = torch.arange(t, device=k.device)
    lag = (pos[:, None] - 1 - pos[None, :]).to(k.dtype)  # (T, T): t - 1 - i
    w = torch.exp(time_decay)  # (C,) decay rate per channel
    logits = -lag[..., None] * w + k[:, None, :, :]  # (B, T, T, C): -(t-1-i) w + k_i
    diag = torch.eye(t, dtype=torch.bool, device=k.device)[..., None]  # (T, T, 1)
    logits = torch.where(diag, time_first + k[:, None, :, :], logits)  # i = t: u + k_t
    future = torch.ones(t, t, dtype=torch.bool, device=k.device).triu(1)[..., None]
    logits = logits.masked_fill(future, float("-inf"))  # i > t: not seen
    weights = torch.softmax(logits, dim=2)  # (B, T, T, C): normalise over i
    return (weights * v[:, None, :, :]).sum(2)  # (B, T, C)


def rwkv_wkv_recurrent(
    time_decay: torch.Tensor, time_first: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """RWKV-4 WKV one token at a time with state ``(num, den, max)`` each (B, C), kept in a shifted
    exponent (``num·e^max`` is the true numerator) so nothing overflows."""
    _check_wkv(time_decay, time_first, k, v)
    if state is None:
        num = torch.zeros_like(k[:, 0])
        den = torch.zeros_like(k[:, 0])
        big = torch.full_like(k[:, 0], -1e38)
    else:
        num, den, big = state
    w = -torch.exp(time_decay)
    outputs = []
    for t in range(k.shape[1]):
        kt, vt = k[:, t], v[:, t]  # (B, C)
        m = torch.maximum(big, time_first + kt)  # output: past state plus the current token with bonus u
        e1, e2 = torch.exp(big - m), torch.exp(time_first + kt - m)
        outputs.append((e1 * num + e2 * vt) / (e1 * den + e2))
        m = torch.maximum(big + w, kt)  # state update: decay the past by e^{-w}, add the current token
        e1, e2 = torch.exp(big + w - m), torch.exp(kt - m)
        num, den, big = e1 * num + e2 * vt, e1 * den + e2, m
    return torch.stack(outputs, dim=1), (num, den, big)


@dataclass
class LinearAttentionConfig:
    """Sizes of the causal linear-attention layer: width and heads."""
    d_model: int = 64   # model width
    n_heads: int = 4    # heads; d_model must divide evenly

    def __post_init__(self):
        check_positive_ints(self, "d_model", "n_heads")
        if self.d_model % self.n_heads:
            raise ValueError(f"LinearAttentionConfig.d_model ({self.d_model}) must be divisible by "
                             f"n_heads ({self.n_heads})")


class LinearAttention(nn.Module):
    """Multi-head causal linear attention layer with q/k/v/o projections; ``mode`` picks the form."""

    def __init__(self, config: LinearAttentionConfig):
        super().__init__()
        self.config = config
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (
            nn.Linear(config.d_model, config.d_model, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor, mode: str = "parallel", state=None):
        """``x`` (B, T, d_model) → ``(out (B, T, d_model), state)``; ``state`` is None in parallel mode."""
        check_sequence_input(x, self.config.d_model, mode, state)
        b, t, _ = x.shape
        h = self.config.n_heads
        q, k, v = (p(x).view(b, t, h, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))  # (B, H, T, D)
        if mode == "parallel":
            out = linear_attention_parallel(q, k, v)
        else:
            out, state = linear_attention_recurrent(q, k, v, state)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1)), state  # (B, T, d_model)


@dataclass
class RWKVConfig:
    """Sizes of the RWKV-style time-mixing layer."""
    hidden_size: int = 64  # model width C (= attention width here)

    def __post_init__(self):
        check_positive_ints(self, "hidden_size")


class RWKVTimeMix(nn.Module):
    """RWKV-4 time mixing ("attention" of RWKV): token shift → r, k, v → σ(r) ⊙ WKV(k, v) → output.

    Names follow HF ``RwkvSelfAttention``. ``state = (last_x (B, C), num, den, max)``.
    """

    def __init__(self, config: RWKVConfig):
        super().__init__()
        c = config.hidden_size
        self.config = config
        self.time_decay = nn.Parameter(torch.linspace(-3.0, 1.0, c))  # decay w = e^{time_decay} per channel
        self.time_first = nn.Parameter(torch.full((c,), 0.5))  # bonus u for the current token
        self.time_mix_key = nn.Parameter(torch.rand(1, 1, c))  # mix of x_t and x_{t-1} feeding k
        self.time_mix_value = nn.Parameter(torch.rand(1, 1, c))
        self.time_mix_receptance = nn.Parameter(torch.rand(1, 1, c))
        self.key, self.value, self.receptance, self.output = (nn.Linear(c, c, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor, mode: str = "parallel", state=None):
        """``x`` (B, T, C) → ``(out (B, T, C), state)``; ``state`` is None in parallel mode."""
        c = self.config.hidden_size
        check_sequence_input(x, c, mode, state)
        last = x.new_zeros(x.shape[0], c) if state is None else state[0]
        shifted = torch.cat([last[:, None], x[:, :-1]], dim=1)  # (B, T, C): x_{t-1}
        mix = lambda mu: x * mu + shifted * (1 - mu)
        k = self.key(mix(self.time_mix_key))
        v = self.value(mix(self.time_mix_value))
        r = torch.sigmoid(self.receptance(mix(self.time_mix_receptance)))
        if mode == "parallel":
            return self.output(r * rwkv_wkv_parallel(self.time_decay, self.time_first, k, v)), None
        wkv, wkv_state = rwkv_wkv_recurrent(self.time_decay, self.time_first, k, v, None if state is None else state[1:])
        return self.output(r * wkv), (x[:, -1], *wkv_state)
