"""DeepSeekMoE: fine-grained routed experts + shared experts (DeepSeek-V3 §2.1.2, DeepSeekMoE paper §3).

    h'_t   = u_t + Σ_{i≤N_s} FFN^(s)_i(u_t) + Σ_{i≤N_r} g_{i,t} FFN^(r)_i(u_t)
    s_{i,t} = sigmoid(u_tᵀ e_i)                                   (affinity, V3 uses sigmoid, V2 softmax)
    selected = TopK_{K_r}(s_{i,t} + b_i)  within the topk_group best groups
               (a group's score = sum of its two best s + b)      (node-limited / group-limited routing)
    g_{i,t} = routed_scaling_factor · s_{i,t} / Σ_{j∈selected} s_{j,t}   (unbiased scores for the gate!)

Load balancing:

- auxiliary-loss-free (V3 §2.1.2, Wang et al. 2024): after each step, b_i -= γ if expert i got more
  than the mean load, += γ if less (sign update, not a gradient): :meth:`DeepSeekMoE.update_bias`;
- sequence-wise balance loss (V3 eq. 17–20): L_Bal = α Σ_i f_i P_i with
  f_i = N_r/(K_r T) Σ_t 1[i ∈ selected_t] and P_i = 1/T Σ_t s_{i,t}/Σ_j s_{j,t}: :func:`sequence_balance_loss`;
- balance metric MaxVio = (max_i load_i − mean load) / mean load: :func:`max_violation`.

The ``routed_scaling_factor`` (2.5 in DeepSeek-V3) is in the released code and config, not in
the paper's equations. Names follow HF ``DeepseekV3MoE`` (``gate.weight``,
``gate.e_score_correction_bias``, ``shared_experts``) except that experts are kept as a list of
SwiGLU modules (``experts.{i}.gate_proj`` …, as in the released checkpoint); HF fuses them into
``experts.gate_up_proj`` ``(E, 2I, d)`` and ``experts.down_proj`` ``(E, d, I)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.checks import check_hidden, check_positive_ints
from course_lib.layers import SwiGLU


@dataclass
class MoEConfig:
    """DeepSeekMoE sizes and routing settings (DeepSeek-V3 §2.1.2 symbols in the field comments)."""
    hidden_size: int                     # model width d
    moe_intermediate_size: int           # hidden width of ONE routed expert (fine-grained: small)
    n_routed_experts: int                # N_r
    num_experts_per_tok: int             # K_r, routed experts per token
    n_shared_experts: int = 1            # N_s, always-on experts (fused into one SwiGLU of width N_s·I)
    n_group: int = 1                     # expert groups (V3: 8, one per node)
    topk_group: int = 1                  # groups a token may use (V3: 4 nodes)
    routed_scaling_factor: float = 1.0   # multiplies the gate values (V3 code/config: 2.5)
    norm_topk_prob: bool = True          # normalise gate values over the selected experts
    bias_update_speed: float = 1e-3      # γ of the auxiliary-loss-free bias update

    def __post_init__(self):
        check_positive_ints(self, "hidden_size", "moe_intermediate_size", "n_routed_experts", "num_experts_per_tok",
                            "n_group", "topk_group")
        if not isinstance(self.n_shared_experts, int) or self.n_shared_experts < 0:
            raise ValueError(f"MoEConfig.n_shared_experts must be an int >= 0, got {self.n_shared_experts!r}")
        if self.n_routed_experts % self.n_group:
            raise ValueError(f"n_routed_experts={self.n_routed_experts} must be divisible by n_group={self.n_group}")
        if self.topk_group > self.n_group:
            raise ValueError(f"topk_group={self.topk_group} must be <= n_group={self.n_group}")
        if self.num_experts_per_tok > self.n_routed_experts:
            raise ValueError(f"num_experts_per_tok (top-k)={self.num_experts_per_tok} must be <= "
                             f"n_routed_experts={self.n_routed_experts}")
        per_group = self.n_routed_experts // self.n_group
        if self.n_group > 1 and per_group < 2:
            raise ValueError(f"group scores sum the top-2 experts of a group; got {per_group} expert(s) per group")
        if self.num_experts_per_tok > self.topk_group * per_group:
            raise ValueError(f"num_experts_per_tok={self.num_experts_per_tok} exceeds the experts reachable in "
                             f"topk_group={self.topk_group} groups of {per_group}")


@dataclass
class Routing:
    """What the router picked for each token: expert indices, gate weights and affinities."""
    scores: torch.Tensor   # (N, E) sigmoid affinities s_{i,t} (no bias), fp32
    indices: torch.Tensor  # (N, K) selected experts
    weights: torch.Tensor  # (N, K) gate values g_{i,t}


class TopkRouter(nn.Module):
    """Sigmoid gate with bias-corrected, group-limited top-k selection (HF ``DeepseekV3TopkRouter``)."""

    def __init__(self, config: MoEConfig):
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.empty(config.n_routed_experts, config.hidden_size))  # centroids e_i
        nn.init.normal_(self.weight, std=0.02)
        # b_i: only used to pick experts; changed by update_bias, not by gradients
        self.register_buffer("e_score_correction_bias", torch.zeros(config.n_routed_experts))

    def forward(self, x: torch.Tensor) -> Routing:
        """``x`` ``(N, d)`` → :class:`Routing`."""
        c = self.config
        scores = (x.float() @ self.weight.float().t()).sigmoid()  # (N, E)
        choice = scores + self.e_score_correction_bias  # (N, E), biased scores decide WHO is picked
        if c.n_group > 1:
            grouped = choice.view(-1, c.n_group, c.n_routed_experts // c.n_group)  # (N, G, E/G)
            group_scores = grouped.topk(2, dim=-1).values.sum(-1)  # (N, G)
            keep = group_scores.topk(c.topk_group, dim=-1).indices  # (N, topk_group)
            group_mask = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, keep, True)  # (N, G)
            choice = grouped.masked_fill(~group_mask[..., None], float("-inf")).flatten(1)  # (N, E)
        indices = choice.topk(c.num_experts_per_tok, dim=-1).indices  # (N, K)
        weights = scores.gather(1, indices)  # (N, K), unbiased scores decide HOW MUCH
        if c.norm_topk_prob:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return Routing(scores, indices, weights * c.routed_scaling_factor)


class DeepSeekMoE(nn.Module):
    """Shared experts + routed experts; remembers the last :class:`Routing` for balancing and plots."""

    def __init__(self, config: MoEConfig):
        super().__init__()
        if not isinstance(config, MoEConfig):
            raise TypeError(f"config must be a MoEConfig, got {type(config).__name__}")
        self.config = c = config
        self.gate = TopkRouter(c)
        self.experts = nn.ModuleList(SwiGLU(c.hidden_size, c.moe_intermediate_size) for _ in range(c.n_routed_experts))
        self.shared_experts = (SwiGLU(c.hidden_size, c.moe_intermediate_size * c.n_shared_experts)
                               if c.n_shared_experts else None)
        self.last_routing: Routing | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, T, d)`` → ``(B, T, d)`` (the residual is added by the decoder layer)."""
        check_hidden(x, self.config.hidden_size)
        flat = x.reshape(-1, x.shape[-1])  # (N, d)
        routing = self.gate(flat)
        self.last_routing = Routing(routing.scores.view(*x.shape[:2], -1), routing.indices, routing.weights)
        out = torch.zeros_like(flat)
        for e in routing.indices.unique().tolist():  # only experts that received tokens
            token, slot = torch.where(routing.indices == e)  # (n_e,), (n_e,)
            y = self.experts[e](flat[token]) * routing.weights[token, slot, None].to(flat.dtype)  # (n_e, d)
            out.index_add_(0, token, y)
        if self.shared_experts is not None:
            out = out + self.shared_experts(flat)
        return out.view_as(x)

    def expert_load(self) -> torch.Tensor:
        """Tokens sent to each routed expert in the last forward pass, ``(E,)``."""
        if self.last_routing is None:
            raise ValueError("expert_load needs a forward pass first")
        return torch.bincount(self.last_routing.indices.flatten(), minlength=self.config.n_routed_experts)

    @torch.no_grad()
    def update_bias(self, load: torch.Tensor | None = None) -> None:
        """Auxiliary-loss-free balancing: b_i += γ·sign(mean load − load_i) (call after the optimizer step)."""
        load = self.expert_load() if load is None else load
        if load.shape != (self.config.n_routed_experts,):
            raise ValueError(f"load must have shape ({self.config.n_routed_experts},), got {tuple(load.shape)}")
        load = load.float()
        self.gate.e_score_correction_bias += self.config.bias_update_speed * torch.sign(load.mean() - load)

    def balance_loss(self, alpha: float) -> torch.Tensor:
        """Sequence-wise balance loss of the last forward pass (see :func:`sequence_balance_loss`)."""
        if self.last_routing is None:
            raise ValueError("balance_loss needs a forward pass first")
        r = self.last_routing
        return sequence_balance_loss(r.scores, r.indices.view(*r.scores.shape[:2], -1), alpha)


def sequence_balance_loss(scores: torch.Tensor, indices: torch.Tensor, alpha: float) -> torch.Tensor:
    """L_Bal = α Σ_i f_i P_i per sequence, averaged over the batch (DeepSeek-V3 eq. 17–20).

    ``scores`` ``(B, T, E)`` unbiased sigmoid affinities, ``indices`` ``(B, T, K)`` selected experts.
    Perfect balance (f_i = 1, P_i = 1/E for every i) gives exactly α.
    """
    if scores.dim() != 3 or indices.dim() != 3 or scores.shape[:2] != indices.shape[:2]:
        raise ValueError(f"scores must be (B, T, E) and indices (B, T, K) with the same B, T; "
                         f"got {tuple(scores.shape)} and {tuple(indices.shape)}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    b, t, e = scores.shape
    k = indices.shape[-1]
    counts = torch.zeros(b, e, device=scores.device).scatter_add_(
        1, indices.reshape(b, -1), torch.ones(b, t * k, device=scores.device))  # (B, E)
    f = counts * e / (k * t)  # (B, E)
    p = (scores / scores.sum(-1, keepdim=True)).mean(1)  # (B, E)
    return alpha * (f * p).sum(-1).mean()


def max_violation(load: torch.Tensor) -> float:
    """MaxVio = (max_i load_i − mean load) / mean load (Wang et al. 2024, used by DeepSeek-V3 §4.5.2)."""
    if load.dim() != 1 or load.numel() == 0:
        raise ValueError(f"load must be a non-empty 1-D tensor of per-expert counts, got {tuple(load.shape)}")
    load = load.float()
    mean = load.mean()
    if mean <= 0:
        raise ValueError("load is all zeros: no token was routed")
    return float((load.max() - mean) / mean)
