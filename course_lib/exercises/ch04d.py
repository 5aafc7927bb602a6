"""Exercise checks of chapter 04d (post-training): the k3 KL estimator, group advantages, DPO's starting loss."""

from __future__ import annotations

import math

import torch

from course_lib.exercises import exercise
from course_lib.posttrain.grpo import group_advantages, k3_kl


@exercise("04d.1", answer="k3_estimator", wrong=(lambda logp, ref: logp - ref,           # k1
                                                 lambda logp, ref: 0.5 * (logp - ref) ** 2,  # k2
                                                 lambda logp, ref: torch.exp(logp - ref) - (logp - ref) - 1),
          writes_code=True)
def check_k3(fn) -> str:
    """Check exercise 04d.1: the learner's per-token k3 KL estimate against ``course_lib.posttrain.grpo.k3_kl``."""
    g = torch.Generator().manual_seed(0)
    logp, ref = -torch.rand(4, 6, generator=g) * 3, -torch.rand(4, 6, generator=g) * 3
    out = fn(logp, ref)
    assert isinstance(out, torch.Tensor) and out.shape == logp.shape, \
        f"应返回与 logp 同形状 {tuple(logp.shape)} 的逐 token 张量"
    assert (out >= -1e-7).all(), "k3 = r − log r − 1 (r = π_ref/π_θ) 永远 ≥ 0；出现了负值（是 k1 = log π_θ − log π_ref 吗？）"
    expected = k3_kl(logp, ref)
    assert torch.allclose(out, expected, atol=1e-6), \
        "r 是 π_ref / π_θ，即 exp(ref_logp − logp)；k2 = ½(log r)² 或把比值倒过来都不是 k3"
    p, q = torch.softmax(torch.randn(30, generator=g), 0), torch.softmax(torch.randn(30, generator=g), 0)
    draws = torch.multinomial(p, 100_000, replacement=True, generator=g)
    estimate = fn(p.log()[draws], q.log()[draws]).mean().item()
    exact = (p * (p / q).log()).sum().item()
    return f"与 course_lib 一致；10 万个样本的均值 {estimate:.4f} ≈ 真实 KL(π_θ‖π_ref) = {exact:.4f}（无偏）"


def _population_std(rewards, group_size):  # wrong: divides by G, not G − 1 (TRL and the paper use the unbiased std)
    r = rewards.view(-1, group_size)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, unbiased=False, keepdim=True) + 1e-4)).reshape(-1)


def _batch_baseline(rewards, group_size):  # wrong: one baseline for the whole batch, not per group
    return (rewards - rewards.mean()) / (rewards.std() + 1e-4)


@exercise("04d.2", answer="my_group_advantages", wrong=(_population_std, _batch_baseline), writes_code=True)
def check_group_advantages(fn) -> str:
    """Check exercise 04d.2: the learner's group-relative advantages against ``group_advantages``."""
    rewards = torch.tensor([1.5, 0.0, 0.5, 0.0, 1.5, 1.5, 1.5, 0.5])
    out = fn(rewards, 4)
    assert isinstance(out, torch.Tensor) and out.shape == rewards.shape, f"应返回形状 (8,) 的张量，得到 {out!r}"
    sums = out.view(2, 4).sum(1)
    assert sums.abs().max() < 1e-4, f"每组的优势之和应为 0（减去的是**组内**均值），得到 {sums.tolist()}"
    expected = group_advantages(rewards, 4)
    assert torch.allclose(out, expected, atol=1e-5), \
        "除以组内的**无偏**标准差 (除以 G − 1，torch 的默认) 再加 ε = 1e-4，与 TRL 相同"
    return f"两组的优势 {[round(v, 3) for v in out.tolist()]}，每组和为 0"


@exercise("04d.3", answer="dpo_loss_at_start", wrong=(0.0, 0.5, 1.0))
def check_dpo_start(value) -> str:
    """Check exercise 04d.3: the DPO loss before any step (LoRA B = 0, so the policy is the reference)."""
    assert isinstance(value, (int, float)), f"答案是一个数，得到 {value!r}"
    assert abs(value - math.log(2)) < 1e-3, \
        "开始时 π_θ = π_ref，两个隐式奖励都是 0，损失是 −log σ(0) —— σ(0) 是多少？"
    return f"−log σ(0) = ln 2 ≈ {math.log(2):.4f}：这就是 DPO 曲线的起点"
