"""The GRPO training loop (DeepSeekMath Algorithm 1, one policy update per batch): the pieces of ``rollout`` in a row.

Each step takes the next ``prompts_per_step`` training problems (cycling through them in order),
samples ``num_generations`` completions for each (:func:`~course_lib.posttrain.rollout.sample`),
scores them with the rule-based rewards (:func:`~course_lib.posttrain.rollout.score`) and takes one
AdamW step on the GRPO loss (:func:`~course_lib.posttrain.rollout.grpo_step`). Besides reward and
KL, each step reports ``signal``: the fraction of groups whose rewards are not all equal. Only those
groups have non-zero advantages, so a step with ``signal = 0`` moves the policy by the KL term alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from course_lib.posttrain.rewards import Problem
from course_lib.posttrain.rollout import Rollout, chat_prompt_ids, grpo_step, sample, score


def group_signal(rewards: torch.Tensor, num_generations: int) -> float:
    """Fraction of groups whose rewards differ (the groups GRPO can learn from): ``(P·G,)`` → a number in [0, 1]."""
    groups = rewards.view(-1, num_generations)  # (P, G)
    return (groups.max(1).values > groups.min(1).values).float().mean().item()


def grpo_train(model, tokenizer, problems: list[Problem], *, steps: int, prompts_per_step: int,
               num_generations: int, max_new_tokens: int, lr: float, stop_id: int, pad_id: int, template_fn,
               beta: float = 0.04, epsilon: float = 0.2, temperature: float = 1.0, format_weight: float = 0.5,
               seed: int = 0) -> Iterator[tuple[dict, Rollout]]:
    """Run ``steps`` GRPO steps on ``model``'s trainable (LoRA) parameters; yields ``(stats, rollout)`` per step.

    ``stats``: mean ``reward``, ``accuracy``, ``format``, ``signal`` (see the module doc), mean k3
    ``kl``, the GRPO ``loss``, ``tokens`` (prompt + completion tokens processed) and ``seconds``. ``template_fn``
    renders a problem's messages to the chat prompt text. Sampling is seeded by ``seed``.
    """
    if not problems:
        raise ValueError("problems must be a non-empty list of training (dev) problems")
    for name, value in (("steps", steps), ("prompts_per_step", prompts_per_step), ("max_new_tokens", max_new_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(num_generations, bool) or not isinstance(num_generations, int) or num_generations < 2:
        raise ValueError(f"num_generations must be an int ≥ 2 (a group needs a baseline), got {num_generations!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters; inject_lora first")
    optimizer = torch.optim.AdamW(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        start = time.perf_counter()
        first = (step * prompts_per_step) % len(problems)
        batch = (problems[first:] + problems[:first])[:prompts_per_step]
        sampled = sample(model, tokenizer, chat_prompt_ids(tokenizer, template_fn, batch), num_generations,
                         max_new_tokens, temperature, stop_id, pad_id, generator)
        rollout = Rollout(*sampled, *score(batch, num_generations, sampled[4], format_weight))
        out = grpo_step(model, optimizer, rollout, beta=beta, epsilon=epsilon, temperature=temperature)
        stats = {"reward": rollout.rewards.mean().item(), "accuracy": rollout.correct.float().mean().item(),
                 "format": rollout.formatted.float().mean().item(),
                 "signal": group_signal(rollout.rewards, num_generations), "kl": out.kl,
                 "loss": float(out.loss.detach()),
                 "tokens": int(rollout.prompt_mask.sum() + rollout.completion_mask.sum()),
                 "seconds": time.perf_counter() - start}
        yield stats, rollout
