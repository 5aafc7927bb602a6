"""A selective state-space layer (Mamba): sequential scan = chunked/parallel scan.

Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", §3 (Algorithm 2).
Per channel d and state index n, with input-dependent Δ_t, B_t, C_t ("selection", §3.2):

    Ā_t = exp(Δ_t A)              (zero-order hold, §2 eq. 4)
    B̄_t u_t ≈ Δ_t B_t u_t         (the simplification the reference kernel uses)
    h_t = Ā_t ⊙ h_{t-1} + Δ_t B_t u_t          h: (D, N), a fixed-size state
    y_t = C_t · h_t + D ⊙ u_t

Because the recurrence is linear in h, it unrolls (with the cumulative log-decay a_t = Σ_{r≤t} Δ_r A) to

    h_t = e^{a_t} h_0 + Σ_{s≤t} e^{a_t − a_s} Δ_s B_s u_s

so a chunk of L tokens can be computed at once (an L × L masked "attention" with decays), and chunks
are chained through h: the chunked algorithm of Mamba-2 (Dao & Gu 2024, §6). ``chunk_size = T`` is the
fully parallel form; ``chunk_size = 1`` is the sequential scan.

:class:`MambaMixer` is the full block (in_proj → causal depthwise conv → SiLU → selective scan → gate
→ out_proj) with the parameter names of HF ``MambaMixer`` (``in_proj``, ``conv1d``, ``x_proj``,
``dt_proj``, ``A_log``, ``D``, ``out_proj``), so its state dict loads unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks import check_positive_ints, check_sequence_input


def _check_scan(u, delta, A, B, C, D) -> None:
    if u.dim() != 3:
        raise ValueError(f"u must have shape (B, T, D), got {tuple(u.shape)}")
    b, t, d = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"delta must have the shape of u {tuple(u.shape)}, got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != d:
        raise ValueError(f"A must have shape ({d}, N), got {tuple(A.shape)}")
    n = A.shape[1]
    for name, x in (("B", B), ("C", C)):
        if x.shape != (b, t, n):
            raise ValueError(f"{name} must have shape ({b}, {t}, {n}) = (B, T, N), got {tuple(x.shape)}")
    if D is not None and D.shape != (d,):
        raise ValueError(f"D must have shape ({d},), got {tuple(D.shape)}")


def selective_scan_sequential(u, delta, A, B, C, D=None, state=None):
    """The recurrence one token at a time. ``u, delta`` (B, T, D); ``A`` (D, N); ``B, C`` (B, T, N);
    ``D`` (D,); ``state`` h_0 (B, D, N) or None. Returns ``(y (B, T, D), h_T (B, D, N))``."""
    _check_scan(u, delta, A, B, C, D)
    h = u.new_zeros(u.shape[0], u.shape[2], A.shape[1]) if state is None else state  # (B, D, N)
    ys = []
    for t in range(u.shape[1]):
        decay = torch.exp(delta[:, t, :, None] * A)  # (B, D, N): Ā_t
        h = decay * h + delta[:, t, :, None] * B[:, t, None, :] * u[:, t, :, None]  # (B, D, N)
        ys.append((h * C[:, t, None, :]).sum(-1))  # (B, D): C_t · h_t
    y = torch.stack(ys, dim=1)  # (B, T, D)
    return (y if D is None else y + u * D), h


def selective_scan_chunked(u, delta, A, B, C, D=None, state=None, chunk_size: int | None = None):
    """The same scan, ``chunk_size`` tokens at a time in parallel (None: the whole sequence at once).

    Inside a chunk, with a_t = Σ_{r≤t} Δ_r A (cumulative log-decay),
    h_t = e^{a_t} h_0 + Σ_{s≤t} e^{a_t − a_s} Δ_s B_s u_s, computed as a (L, L) masked sum;
    memory is O(L² · D · N) per chunk, so the chunk trades memory for parallelism.
    """
    _check_scan(u, delta, A, B, C, D)
    t_total = u.shape[1]
    chunk_size = t_total if chunk_size is None else chunk_size
    if not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    h = u.new_zeros(u.shape[0], u.shape[2], A.shape[1]) if state is None else state  # (B, D, N)
    ys = []
    for start in range(0, t_total, chunk_size):
        sl = slice(start, start + chunk_size)
        dt, uc, bc, cc = delta[:, sl], u[:, sl], B[:, sl], C[:, sl]
        length = dt.shape[1]
        a = torch.cumsum(dt[..., None] * A, dim=1)  # (B, L, D, N): a_t
        x = dt[..., None] * bc[:, :, None, :] * uc[..., None]  # (B, L, D, N): Δ_s B_s u_s
        seg = a[:, :, None] - a[:, None, :]  # (B, L_t, L_s, D, N): a_t − a_s
        causal = torch.ones(length, length, dtype=torch.bool, device=u.device).tril()[..., None, None]
        seg = seg.masked_fill(~causal, float("-inf"))  # s > t contributes e^{-inf} = 0 (and never overflows)
        states = (torch.exp(seg) * x[:, None]).sum(2) + torch.exp(a) * h[:, None]  # (B, L, D, N): h_t
        ys.append((states * cc[:, :, None, :]).sum(-1))  # (B, L, D)
        h = states[:, -1]  # carry h to the next chunk
    y = torch.cat(ys, dim=1)  # (B, T, D)
    return (y if D is None else y + u * D), h


@dataclass
class SelectiveSSMConfig:
    """Mamba mixer sizes with HF ``MambaConfig`` names."""
    hidden_size: int = 64          # model width d_model
    state_size: int = 16           # N: state entries per channel
    expand: int = 2                # intermediate_size = expand * hidden_size (D channels of the scan)
    conv_kernel: int = 4           # width of the causal depthwise convolution
    time_step_rank: int | None = None  # rank of the Δ projection; None = ceil(hidden_size / 16) as in Mamba
    chunk_size: int | None = None  # tokens per chunk in the parallel scan (None: whole sequence)
    dt_min: float = 1e-3           # initial Δ drawn log-uniformly in [dt_min, dt_max] (Mamba §3.6)
    dt_max: float = 1e-1

    def __post_init__(self):
        check_positive_ints(self, "hidden_size", "state_size", "expand", "conv_kernel",
                            *(name for name in ("time_step_rank", "chunk_size") if getattr(self, name) is not None))

    @property
    def intermediate_size(self) -> int:
        """expand · hidden_size, the inner width D."""
        return self.expand * self.hidden_size

    @property
    def dt_rank(self) -> int:
        """Rank of the Δ projection: ``time_step_rank``, or ⌈hidden_size / 16⌉ when unset (HF's 'auto')."""
        return self.time_step_rank or math.ceil(self.hidden_size / 16)


class MambaMixer(nn.Module):
    """The Mamba block (Gu & Dao 2023, Fig. 3) with HF ``MambaMixer`` parameter names.

    ``forward(x, mode, state)``: ``x`` (B, T, hidden) → ``(out, state)``; ``state = (conv_state
    (B, D, conv_kernel - 1), ssm_state (B, D, N))`` in recurrent mode, None in parallel mode.
    """

    def __init__(self, config: SelectiveSSMConfig):
        super().__init__()
        self.config = config
        d, n, r = config.intermediate_size, config.state_size, config.dt_rank
        self.in_proj = nn.Linear(config.hidden_size, 2 * d, bias=False)  # → (x, gate z)
        self.conv1d = nn.Conv1d(d, d, config.conv_kernel, groups=d, padding=config.conv_kernel - 1)
        self.x_proj = nn.Linear(d, r + 2 * n, bias=False)  # → (Δ low-rank, B_t, C_t): the selection
        self.dt_proj = nn.Linear(r, d)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(d, 1))  # S4D-real
        self.D = nn.Parameter(torch.ones(d))
        self.out_proj = nn.Linear(d, config.hidden_size, bias=False)
        dt = torch.exp(torch.rand(d) * (math.log(config.dt_max) - math.log(config.dt_min)) + math.log(config.dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus, so softplus(bias) = dt

    def _selection(self, x: torch.Tensor):
        """``x`` (B, T, D) after the conv → Δ (B, T, D), B_t (B, T, N), C_t (B, T, N)."""
        n, r = self.config.state_size, self.config.dt_rank
        dt, b_t, c_t = self.x_proj(x).split([r, n, n], dim=-1)
        return F.softplus(self.dt_proj(dt)), b_t, c_t

    def forward(self, x: torch.Tensor, mode: str = "parallel", state=None):
        """``x`` ``(B, T, hidden)`` → ``(B, T, hidden)``: conv, selective scan, gate, out_proj."""
        check_sequence_input(x, self.config.hidden_size, mode, state)
        t, k = x.shape[1], self.config.conv_kernel
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # 2 × (B, T, D)
        xs = xs.transpose(1, 2)  # (B, D, T)
        if mode == "parallel":
            xs = self.conv1d(xs)[..., :t]  # causal: keep the first T outputs of the padded conv
        else:
            conv_state, ssm_state = (None, None) if state is None else state
            if conv_state is None:
                conv_state = xs.new_zeros(xs.shape[0], xs.shape[1], k - 1)
            window = torch.cat([conv_state, xs], dim=-1)  # (B, D, K-1+T): the last K-1 inputs, then new ones
            xs = F.conv1d(window, self.conv1d.weight, self.conv1d.bias, groups=xs.shape[1])  # (B, D, T)
            conv_state = window[..., window.shape[-1] - (k - 1):]
        xs = F.silu(xs).transpose(1, 2)  # (B, T, D)
        delta, b_t, c_t = self._selection(xs)
        A = -torch.exp(self.A_log)  # (D, N), negative so e^{ΔA} < 1
        if mode == "parallel":
            y, _ = selective_scan_chunked(xs, delta, A, b_t, c_t, self.D, chunk_size=self.config.chunk_size)
            new_state = None
        else:
            y, ssm_state = selective_scan_sequential(xs, delta, A, b_t, c_t, self.D, ssm_state)
            new_state = (conv_state, ssm_state)
        return self.out_proj(y * F.silu(z)), new_state  # (B, T, hidden)
