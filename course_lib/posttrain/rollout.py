"""The GRPO training loop's pieces on a real model: sample groups, score them, take a step, evaluate.

One GRPO step (DeepSeekMath Algorithm 1, with one policy update per batch as TRL's default):
sample G completions for each of P prompts with the chapter-03 decoding loop, score them with
the rule-based rewards, turn rewards into group advantages, then one gradient step on
:func:`course_lib.posttrain.grpo.grpo_loss`, with the LoRA-off model as the reference for the KL.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib import generation
from course_lib.peft.lora import disable_adapter
from course_lib.posttrain.grpo import GRPOOutput, group_advantages, grpo_loss
from course_lib.posttrain.logprobs import completion_logprobs
from course_lib.posttrain.rewards import Problem, correctness_reward, format_reward, total_reward


@dataclass
class Rollout:
    """G sampled completions per prompt, as tensors and texts, with their rewards and advantages."""
    prompt_ids: torch.Tensor       # (P·G, T_p) left padded
    prompt_mask: torch.Tensor      # (P·G, T_p)
    completion_ids: torch.Tensor   # (P·G, C) right padded (the stop token is kept, as TRL)
    completion_mask: torch.Tensor  # (P·G, C)
    texts: list[str]               # decoded completions
    rewards: torch.Tensor          # (P·G,)
    advantages: torch.Tensor       # (P·G,)
    correct: torch.Tensor          # (P·G,) 0/1
    formatted: torch.Tensor        # (P·G,) 0/1


def chat_prompt_ids(tokenizer, template_fn, problems: list[Problem]) -> list[list[int]]:
    """Token ids of each problem's chat prompt (``template_fn(messages)`` → text, with the generation prompt)."""
    return [tokenizer.encode(template_fn(p.messages)) for p in problems]


def _split_completions(out: torch.Tensor, prompt_len: int, stop_id: int, pad_id: int):
    """Completion ids ``(B, C)``, mask ``(B, C)``: tokens up to and including the first stop token."""
    completion = out[:, prompt_len:]  # (B, C)
    is_stop = completion == stop_id
    first_stop = torch.where(is_stop.any(1), is_stop.int().argmax(1), completion.shape[1])  # (B,)
    mask = (torch.arange(completion.shape[1])[None] <= first_stop[:, None]).long()  # (B, C)
    return completion.masked_fill(mask == 0, pad_id), mask


@torch.no_grad()
def sample(model, tokenizer, prompts: list[list[int]], num_generations: int, max_new_tokens: int,
           temperature: float, stop_id: int, pad_id: int, generator: torch.Generator | None = None):
    """G completions per prompt → (prompt_ids, prompt_mask, completion_ids, completion_mask, texts)."""
    repeated = [p for p in prompts for _ in range(num_generations)]  # P·G prompts, groups in a row
    ids, mask = generation.pad_left(repeated, pad_id)  # (P·G, T_p)
    device = generation.model_device(model)
    ids, mask = ids.to(device), mask.to(device)
    out = generation.generate(model, ids, max_new_tokens, attention_mask=mask, temperature=temperature,
                              stop_tokens=[stop_id], pad_token_id=pad_id, generator=generator).cpu()
    completion_ids, completion_mask = _split_completions(out, ids.shape[1], stop_id, pad_id)
    texts = [tokenizer.decode([t for t, m in zip(row, keep) if m and t != stop_id])
             for row, keep in zip(completion_ids.tolist(), completion_mask.tolist())]
    return ids.cpu(), mask.cpu(), completion_ids, completion_mask, texts


def score(problems: list[Problem], num_generations: int, texts: list[str], format_weight: float = 0.5):
    """Rewards, advantages, correctness and format flags for the texts of :func:`sample`."""
    answers = [p.answer for p in problems for _ in range(num_generations)]
    rewards = torch.tensor(total_reward(texts, answers, format_weight))  # (P·G,)
    return (rewards, group_advantages(rewards, num_generations), torch.tensor(correctness_reward(texts, answers)),
            torch.tensor(format_reward(texts)))


def grpo_step(model, optimizer, rollout: Rollout, beta: float = 0.04, epsilon: float = 0.2,
              temperature: float = 1.0) -> GRPOOutput:
    """One policy update on ``rollout`` (π_old = π_θ: the ratio is 1, the gradient is the policy gradient)."""
    device = generation.model_device(model)
    batch = [t.to(device) for t in (rollout.prompt_ids, rollout.prompt_mask, rollout.completion_ids,
                                    rollout.completion_mask)]
    ref = None
    if beta:
        with torch.no_grad(), disable_adapter(model):
            ref = completion_logprobs(model, *batch, temperature=temperature)  # (B, C)
    model.train()
    logp = completion_logprobs(model, *batch, temperature=temperature)  # (B, C)
    out = grpo_loss(logp, None, rollout.advantages.to(device), batch[3], ref_logp=ref, beta=beta, epsilon=epsilon)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    optimizer.step()
    model.eval()
    return out


def evaluate(model, tokenizer, template_fn, problems: list[Problem], max_new_tokens: int, stop_id: int,
             pad_id: int, batch_size: int = 64) -> dict:
    """Greedy decoding on ``problems``: accuracy (tagged answer right), format rate, and the texts."""
    texts = []
    for i in range(0, len(problems), batch_size):
        chunk = problems[i:i + batch_size]
        texts += sample(model, tokenizer, chat_prompt_ids(tokenizer, template_fn, chunk), 1, max_new_tokens,
                        0.0, stop_id, pad_id)[4]
    answers = [p.answer for p in problems]
    return {"accuracy": sum(correctness_reward(texts, answers)) / len(texts),
            "format": sum(format_reward(texts)) / len(texts), "texts": texts}
