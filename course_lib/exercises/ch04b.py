"""Exercise checks of chapter 04b (DeepSeekMoE, MTP): MaxVio, the sequence-wise balance loss, speculative speed-up."""

from __future__ import annotations

import torch

from course_lib.exercises import exercise
from course_lib.models.deepseek.moe import max_violation, sequence_balance_loss


def _max_over_mean(load):  # wrong: forgets to subtract the mean (perfect balance would give 1, not 0)
    load = load.float()
    return (load.max() / load.mean()).item()


def _max_minus_min(load):  # wrong: spread instead of the excess of the most loaded expert
    load = load.float()
    return ((load.max() - load.min()) / load.mean()).item()


@exercise("04b.1", answer="my_max_vio", wrong=(_max_over_mean, _max_minus_min))
def check_max_vio(fn) -> str:
    """Check exercise 04b.1: the learner's MaxVio load-imbalance metric (Wang et al. 2024) against ``max_violation``."""
    g = torch.Generator().manual_seed(0)
    for load in (torch.tensor([4, 4, 4, 4]), torch.tensor([10, 2, 2, 2]), torch.tensor([7, 1, 4, 4]),
                 torch.randint(1, 50, (16,), generator=g)):
        got, want = float(fn(load)), max_violation(load)
        assert abs(got - want) < 1e-6, f"load = {load.tolist()}：MaxVio 应为 {want:.4f}，你的答案 {got:.4f}"
    return "MaxVio = (最大负载 − 平均负载) / 平均负载，完全均衡时为 0；[10, 2, 2, 2] 是 1.5"


def _f_as_fraction(scores, picked, alpha):  # wrong: f_i without the N_r / K_r factor (balance gives alpha / N_r)
    t, n_r = scores.shape
    f = torch.zeros(n_r).scatter_add_(0, picked.flatten(), torch.ones(picked.numel())) / (picked.shape[1] * t)
    return alpha * (f * (scores / scores.sum(-1, keepdim=True)).mean(0)).sum()


def _p_unnormalised(scores, picked, alpha):  # wrong: P_i from raw sigmoid scores, not normalised per token
    t, n_r = scores.shape
    f = torch.zeros(n_r).scatter_add_(0, picked.flatten(), torch.ones(picked.numel())) * n_r / (picked.shape[1] * t)
    return alpha * (f * scores.mean(0)).sum()


@exercise("04b.2", answer="my_balance_loss", wrong=(_f_as_fraction, _p_unnormalised), writes_code=True)
def check_balance_loss(fn) -> str:
    """Check exercise 04b.2: the learner's sequence-wise balance loss (DeepSeek-V3 eq. 17–20) against ``sequence_balance_loss``."""
    g = torch.Generator().manual_seed(0)
    for t, n_r, k_r in ((10, 6, 2), (32, 16, 4), (7, 8, 1)):
        scores = torch.rand(t, n_r, generator=g)
        picked = scores.topk(k_r, dim=-1).indices
        got = torch.as_tensor(fn(scores, picked, 0.01)).float()
        want = sequence_balance_loss(scores[None], picked[None], 0.01)
        assert got.shape == (), f"L_Bal 是一个标量，得到形状 {tuple(got.shape)}"
        assert torch.allclose(got, want, rtol=1e-5), (f"T={t}, N_r={n_r}, K_r={k_r}：L_Bal 应为 {want.item():.6f}，你的是 "
                                                      f"{got.item():.6f}。检查 f_i 的系数 N_r/(K_r T) 和 P_i 里的按 token 归一化")
    # a perfectly balanced routing (every expert chosen equally often, uniform scores) gives exactly alpha
    scores = torch.ones(8, 4)
    picked = torch.tensor([[0, 1], [2, 3]] * 4)
    balanced = float(fn(scores, picked, 0.01))
    assert abs(balanced - 0.01) < 1e-7, f"完全均衡时 L_Bal 应等于 α = 0.01，你的是 {balanced}"
    return "L_Bal = α Σ f_i P_i 与 sequence_balance_loss 一致；完全均衡时等于 α"


@exercise("04b.3", answer="expected_speedup",
          wrong=(lambda p, mtp_cost: 1 + p, lambda p, mtp_cost: (1 + p) * (1 - mtp_cost),
                 lambda p, mtp_cost: 1 / (1 - p) / (1 + mtp_cost)))
def check_expected_speedup(fn) -> str:
    """Check exercise 04b.3: the learner's MTP speculative-decoding speedup against (1 + p) / (1 + cost)."""
    for p, cost in ((0.5, 0.5), (0.0, 0.0), (0.85, 1 / 61), (0.9, 0.25), (0.99, 0.0)):
        got, want = float(fn(p, cost)), (1 + p) / (1 + cost)
        assert abs(got - want) < 1e-9, (f"p = {p}, mtp_cost = {cost:.3f}：每趟得到 1 + p 个 token、花 1 + mtp_cost 的时间，"
                                        f"加速比应为 {want:.3f}，你的答案 {got:.3f}")
    return f"加速比 = (1 + p) / (1 + c)；DeepSeek-V3（p ≈ 0.85，一层 MTP 对 61 层主模型）≈ {1.85 / (1 + 1 / 61):.2f}×，与论文的 1.8× 吻合"
