"""GRPO (DeepSeekMath, Shao et al. 2024 §4.1; DeepSeek-R1 §2.2.1), the loss as TRL's ``GRPOTrainer``.

For each prompt, G completions are sampled; their rewards r₁..r_G give each completion the
*group-relative advantage* Â_i = (r_i − mean(r)) / (std(r) + ε) (no value network: the group is
the baseline). Every completion token then gets PPO's clipped objective and a KL penalty to the
reference policy, estimated with Schulman's unbiased, positive *k3* estimator::

    ρ_t = π_θ(o_t) / π_old(o_t)
    L_t = −min(ρ_t Â, clip(ρ_t, 1−ε_low, 1+ε_high) Â) + β · ρ_t · (π_ref/π_θ − log(π_ref/π_θ) − 1)

(the ρ_t on the KL is TRL's default bias correction from DeepSeek-V3.2; the R1 paper's form has none).

How the per-token terms are averaged is TRL's ``loss_type`` (``trl/trainer/grpo_trainer.py``,
``_compute_loss``): ``"dapo"`` (TRL's default: Σ over all tokens / number of tokens), ``"grpo"``
(the paper: mean over each sequence's tokens, then over sequences), ``"bnpo"`` (as dapo, within
one batch) and ``"dr_grpo"`` (Σ / (B · max_completion_length), Dr. GRPO, Liu et al. 2025).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LOSS_TYPES = ("dapo", "grpo", "bnpo", "dr_grpo")


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """Â = (r − group mean) / (group std + ε): rewards ``(N,)``, groups of ``group_size`` in a row → ``(N,)``.

    The std is the unbiased one (Bessel), as TRL's ``nanstd``; ``scale=False`` keeps r − mean
    (Dr. GRPO). A group of size 1 has no baseline and NaN rewards no meaning: both raise ``ValueError``.
    """
    if not isinstance(group_size, int) or group_size < 2:
        raise ValueError(f"group_size must be an int ≥ 2 (one completion has no group baseline), got {group_size!r}")
    if rewards.dim() != 1 or rewards.numel() == 0 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be a non-empty (N,) tensor with N a multiple of group_size={group_size}, "
                         f"got shape {tuple(rewards.shape)}")
    if torch.isnan(rewards).any():
        raise ValueError("rewards contain NaN; score every completion (or drop it) before computing advantages")
    grouped = rewards.float().view(-1, group_size)  # (N / G, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)  # (N / G, G)
    if scale:
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)  # unbiased std, as TRL
    return centred.reshape(-1)  # (N,)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(π_θ ‖ π_ref) estimate k3 = e^{Δ} − Δ − 1 with Δ = log π_ref − log π_θ (≥ 0, unbiased)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


@dataclass
class GRPOOutput:
    """The loss and what TRL logs next to it."""
    loss: torch.Tensor          # scalar, differentiable
    kl: float                   # mean k3 over completion tokens (0 when β = 0 and no reference given)
    clip_ratio: float           # fraction of completion tokens whose ratio was clipped
    ratio: torch.Tensor         # (B, C) importance ratios ρ_t (detached)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor | None, advantages: torch.Tensor, mask: torch.Tensor,
              ref_logp: torch.Tensor | None = None, beta: float = 0.0, epsilon: float = 0.2,
              epsilon_high: float | None = None, loss_type: str = "dapo",
              max_completion_length: int | None = None, kl_ratio_correction: bool = True) -> GRPOOutput:
    """GRPO's loss from per-token log-probs ``(B, C)`` (π_θ, π_old, π_ref), advantages ``(B,)`` and ``mask`` ``(B, C)``.

    ``old_logp=None`` means one policy step per batch: π_old = π_θ detached, so ρ = 1 and the
    clip is inactive (TRL does the same). ``epsilon_high`` defaults to ``epsilon`` (DAPO uses 0.28).
    ``kl_ratio_correction`` multiplies the k3 term by ρ_t (TRL's default ``use_bias_correction_kl``,
    DeepSeek-V3.2 §3.1): the samples come from π_old, so ρ makes the KL's gradient unbiased; its value
    is unchanged when ρ = 1, its gradient is not.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if logp.dim() != 2 or mask.shape != logp.shape or (old_logp is not None and old_logp.shape != logp.shape):
        raise ValueError(f"logp, old_logp and mask must all be (B, C); got {tuple(logp.shape)}, "
                         f"{None if old_logp is None else tuple(old_logp.shape)}, {tuple(mask.shape)}")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages must be (B,) = ({logp.shape[0]},), got {tuple(advantages.shape)}")
    if mask.sum() == 0:
        raise ValueError("mask selects no completion token (all completions empty)")
    if beta != 0.0 and (ref_logp is None or ref_logp.shape != logp.shape):
        raise ValueError(f"beta={beta} needs ref_logp of shape {tuple(logp.shape)}")
    if loss_type == "dr_grpo" and not max_completion_length:
        raise ValueError("loss_type='dr_grpo' needs max_completion_length")
    eps_high = epsilon if epsilon_high is None else epsilon_high
    old_logp = logp.detach() if old_logp is None else old_logp
    mask = mask.to(logp.dtype)
    adv = advantages[:, None].to(logp.dtype)  # (B, 1)
    ratio = torch.exp(logp - old_logp)  # (B, C)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + eps_high)  # (B, C)
    per_token = -torch.min(ratio * adv, clipped * adv)  # (B, C)
    kl = torch.zeros_like(logp) if ref_logp is None else k3_kl(logp, ref_logp)  # (B, C)
    if kl_ratio_correction:
        kl = kl * ratio
    if beta != 0.0:
        per_token = per_token + beta * kl
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (per_token.shape[0] * max_completion_length)
    else:  # dapo, bnpo: every completion token of the batch weighs the same
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    was_clipped = ((ratio < 1 - epsilon) & (adv < 0)) | ((ratio > 1 + eps_high) & (adv > 0))
    n = mask.sum()
    return GRPOOutput(loss, float((kl.detach() * mask).sum() / n), float((was_clipped * mask).sum() / n),
                      ratio.detach())
