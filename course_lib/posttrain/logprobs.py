"""Log-probabilities of completion tokens: the quantity every post-training loss is built from.

For a sequence ``x = prompt ⊕ completion`` the model's logits at position ``t`` predict token
``t + 1``, so the completion's tokens are scored by the logits one position earlier::

    log π(y_i | x, y_<i) = log_softmax(logits[P + i - 1] / τ)[y_i]

(τ the sampling temperature, as TRL's ``GRPOTrainer`` divides by it). A sequence's log-probability
is the sum over its completion tokens (DPO, Rafailov et al. 2023 eq. 7); padding and prompt tokens
are masked out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log softmax(logits / τ)`` at ``targets``: logits ``(B, T, V)``, targets ``(B, T)`` → ``(B, T)``."""
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f"logits must be (B, T, V) and targets (B, T) with the same B, T; got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    logp = F.log_softmax(logits.float() / temperature, dim=-1)  # (B, T, V)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)


def _logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Logits ``(B, T, V)`` from a course model or a transformers model (both return ``.logits``)."""
    return model(input_ids, attention_mask=attention_mask).logits


def completion_logprobs(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                        completion_mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probs ``(B, C)`` of the completion tokens given left-padded prompts (GRPO's layout).

    ``prompt_ids``/``prompt_mask`` ``(B, P)`` are left-padded, ``completion_ids``/``completion_mask``
    ``(B, C)`` right-padded; masked completion positions still get a number, multiply by the mask.
    """
    if prompt_ids.shape != prompt_mask.shape or completion_ids.shape != completion_mask.shape:
        raise ValueError("prompt_ids/prompt_mask and completion_ids/completion_mask must have equal shapes, got "
                         f"{tuple(prompt_ids.shape)}, {tuple(prompt_mask.shape)}, {tuple(completion_ids.shape)}, "
                         f"{tuple(completion_mask.shape)}")
    if prompt_ids.shape[0] != completion_ids.shape[0] or completion_ids.shape[1] == 0:
        raise ValueError(f"need one non-empty completion row per prompt, got prompts {tuple(prompt_ids.shape)} "
                         f"and completions {tuple(completion_ids.shape)}")
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)  # (B, P + C)
    attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)  # (B, P + C)
    C = completion_ids.shape[1]
    logits = _logits(model, input_ids, attention_mask)[:, -C - 1:-1]  # (B, C, V): position t predicts t + 1
    return token_logprobs(logits, completion_ids, temperature)


def shifted_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Log-prob of every next token, ``(B, T - 1)``: entry ``t`` scores ``input_ids[:, t + 1]`` (DPO's layout)."""
    if input_ids.shape != attention_mask.shape or input_ids.dim() != 2 or input_ids.shape[1] < 2:
        raise ValueError(f"input_ids and attention_mask must both be (B, T) with T ≥ 2, got "
                         f"{tuple(input_ids.shape)} and {tuple(attention_mask.shape)}")
    logits = _logits(model, input_ids, attention_mask)[:, :-1]  # (B, T - 1, V)
    return token_logprobs(logits, input_ids[:, 1:])


def sequence_logprobs(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``Σ_t mask · log π`` per row: ``(B, T)`` → ``(B,)`` (the log-probability of the masked tokens)."""
    if per_token.shape != mask.shape:
        raise ValueError(f"per_token {tuple(per_token.shape)} and mask {tuple(mask.shape)} must have the same shape")
    return (per_token * mask).sum(-1)
