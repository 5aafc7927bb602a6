"""DPO (Rafailov et al. 2023, eq. 7) and IPO (Azar et al. 2023, eq. 17), as TRL's ``DPOTrainer``.

DPO turns a preference pair (chosen y_w, rejected y_l) into a classification loss on the
*implicit rewards* r = β · (log π_θ(y|x) − log π_ref(y|x))::

    L_DPO = −log σ(r_w − r_l)                       margin = r_w − r_l
    L_IPO = ((Δ_w / |y_w| − Δ_l / |y_l|) − 1/(2β))²  Δ = log π_θ − log π_ref (TRL normalises by length)

The reference π_ref is the model before training. With LoRA it costs nothing extra: the same
weights with the adapter switched off (``course_lib.peft.lora.disable_adapter``) are π_ref.
TRL's batch layout: ``input_ids`` ``(2B, T)`` is the B chosen rows then the B rejected rows, right
padded, and ``completion_mask`` marks the completion tokens (``trl/trainer/dpo_trainer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_lib.peft.lora import disable_adapter
from course_lib.posttrain.logprobs import sequence_logprobs, shifted_logprobs

LOSS_TYPES = ("sigmoid", "ipo")


@dataclass
class DPOOutput:
    """The DPO loss and the numbers TRL logs (``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``)."""
    loss: torch.Tensor             # scalar, differentiable
    chosen_rewards: torch.Tensor   # (B,) β · (log π_θ − log π_ref) of the chosen completions (detached)
    rejected_rewards: torch.Tensor  # (B,) the same for the rejected ones
    margins: torch.Tensor          # (B,) chosen − rejected
    accuracy: float                # fraction of pairs with chosen reward > rejected reward


def dpo_loss(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, ref_chosen_logps: torch.Tensor,
             ref_rejected_logps: torch.Tensor, beta: float = 0.1, loss_type: str = "sigmoid",
             chosen_lengths: torch.Tensor | None = None, rejected_lengths: torch.Tensor | None = None) -> DPOOutput:
    """DPO (``"sigmoid"``) or IPO (``"ipo"``, needs the completion lengths) from sequence log-probs ``(B,)``."""
    shapes = {t.shape for t in (chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps)}
    if len(shapes) != 1 or chosen_logps.dim() != 1 or chosen_logps.numel() == 0:
        raise ValueError(f"the four log-prob tensors must all be (B,) with B ≥ 1, got shapes {sorted(shapes)}")
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    chosen_ratio = chosen_logps - ref_chosen_logps  # (B,) Δ_w
    rejected_ratio = rejected_logps - ref_rejected_logps  # (B,) Δ_l
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    else:
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError("loss_type='ipo' needs chosen_lengths and rejected_lengths (completion token counts)")
        delta = chosen_ratio / chosen_lengths.clamp(min=1) - rejected_ratio / rejected_lengths.clamp(min=1)
        losses = (delta - 1 / (2 * beta)) ** 2
    chosen_rewards, rejected_rewards = beta * chosen_ratio.detach(), beta * rejected_ratio.detach()
    return DPOOutput(losses.mean(), chosen_rewards, rejected_rewards, chosen_rewards - rejected_rewards,
                     float((chosen_rewards > rejected_rewards).float().mean()))


def pair_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  completion_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(chosen, rejected)`` sequence log-probs ``(B,)`` each from TRL's ``(2B, T)`` layout."""
    if completion_mask.shape != input_ids.shape or input_ids.shape[0] % 2:
        raise ValueError(f"input_ids {tuple(input_ids.shape)} must have an even number of rows (chosen then "
                         f"rejected) and completion_mask the same shape, got {tuple(completion_mask.shape)}")
    if (completion_mask.sum(-1) == 0).any():
        raise ValueError("every row needs at least one completion token (an empty completion has no log-prob)")
    per_token = shifted_logprobs(model, input_ids, attention_mask)  # (2B, T - 1)
    logps = sequence_logprobs(per_token, completion_mask[:, 1:].to(per_token.dtype))  # (2B,)
    return logps.chunk(2)


def dpo_batch_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor,
                   beta: float = 0.1, loss_type: str = "sigmoid") -> DPOOutput:
    """DPO on a LoRA model: the policy with the adapter on, the reference with it off (no second copy)."""
    chosen, rejected = pair_logprobs(model, input_ids, attention_mask, completion_mask)
    with torch.no_grad(), disable_adapter(model):
        ref_chosen, ref_rejected = pair_logprobs(model, input_ids, attention_mask, completion_mask)
    lengths = completion_mask.sum(-1).chunk(2)
    return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta, loss_type, *lengths)
