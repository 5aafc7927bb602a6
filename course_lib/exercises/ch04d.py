"""Exercise checks of chapter 04d (post-training): the k3 KL estimator, a length-normalised reward, DPO's starting loss."""

from __future__ import annotations

import math

import torch

from course_lib.exercises import exercise
from course_lib.posttrain.grpo import k3_kl
from course_lib.posttrain.rewards import correctness_reward


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


def _length_only(completions, answers, max_chars=40):  # wrong: rewards short answers even when they are wrong
    return [max(0.0, 1 - len(c) / max_chars) for c in completions]


def _unclamped(completions, answers, max_chars=40):  # wrong: a very long right answer gets a negative reward
    return [(1 - len(c) / max_chars) * r for c, r in zip(completions, correctness_reward(completions, answers))]


@exercise("04d.2", answer="length_normalised_reward", wrong=(_length_only, _unclamped), writes_code=True)
def check_length_reward(fn) -> str:
    """Check exercise 04d.2: a correctness reward scaled down by the completion's length (at least 0)."""
    texts = ["<answer>5</answer>", "5 <answer>5</answer>", "<answer>6</answer>", "x" * 50 + "<answer>5</answer>", "5"]
    got = fn(texts, [5] * len(texts))
    assert isinstance(got, list) and len(got) == len(texts), f"应返回与 completions 等长的 list，得到 {got!r}"
    assert got[2] == 0 and got[4] == 0, "答错（或没有 <answer> 标签）时奖励必须是 0，否则模型会学着只写短回答"
    assert got[3] == 0, "很长的正确回答奖励应被截到 0（max(0, …)），不能是负数"
    expected = [max(0.0, 1 - len(t) / 40) * r for t, r in zip(texts, correctness_reward(texts, [5] * len(texts)))]
    assert all(abs(a - b) < 1e-9 for a, b in zip(got, expected)), \
        f"正确时奖励 = max(0, 1 − len(completion) / max_chars)，max_chars = 40；期望 {expected}，得到 {got}"
    return f"奖励 {[round(v, 3) for v in got]}：又短又对的回答得分最高"


@exercise("04d.3", answer="dpo_loss_at_start", wrong=(0.0, 0.5, 1.0))
def check_dpo_start(value) -> str:
    """Check exercise 04d.3: the DPO loss before any step (LoRA B = 0, so the policy is the reference)."""
    assert isinstance(value, (int, float)), f"答案是一个数，得到 {value!r}"
    assert abs(value - math.log(2)) < 1e-3, \
        "开始时 π_θ = π_ref：两个隐式奖励各是多少？把它们代回 DPO 损失的式子"
    return f"−log σ(0) = ln 2 ≈ {math.log(2):.4f}：这就是 DPO 曲线的起点"
