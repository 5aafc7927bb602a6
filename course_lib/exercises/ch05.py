"""Checks for chapter 05 (LoRA) exercises."""

from __future__ import annotations

import torch

from course_lib.exercises import exercise

LORA_QV_PARAMS_SMOLLM2 = 30 * 8 * ((576 + 576) + (576 + 192))  # r (in + out) per layer for q (576→576) and v (576→192)


def _reference_lora_sgd_delta(x, y, w0, a0, scaling, lr, steps):
    a, b = a0.clone().requires_grad_(True), torch.zeros(w0.shape[0], a0.shape[0], requires_grad=True)
    for _ in range(steps):
        h = x @ w0.T + scaling * (x @ a.T @ b.T)
        loss = 0.5 * ((h - y) ** 2).sum(dim=-1).mean()
        grad_a, grad_b = torch.autograd.grad(loss, (a, b))
        with torch.no_grad():
            a -= lr * grad_a
            b -= lr * grad_b
    return (scaling * b @ a).detach()


def _lora_sgd_delta_a_frozen(x, y, w0, a0, scaling, lr, steps):
    b = torch.zeros(w0.shape[0], a0.shape[0], requires_grad=True)
    for _ in range(steps):
        loss = 0.5 * ((x @ w0.T + scaling * (x @ a0.T @ b.T) - y) ** 2).sum(dim=-1).mean()
        (grad_b,) = torch.autograd.grad(loss, (b,))
        with torch.no_grad():
            b -= lr * grad_b
    return (scaling * b @ a0).detach()


def _lora_sgd_delta_unscaled(x, y, w0, a0, scaling, lr, steps):
    return _reference_lora_sgd_delta(x, y, w0, a0, scaling, lr, steps) / scaling


def _lora_sgd_delta_summed_loss(x, y, w0, a0, scaling, lr, steps):
    return _reference_lora_sgd_delta(x, y, w0, a0, scaling, lr * x.shape[0], steps)


def _rank_sweep(fn, rank_scaling) -> list[float]:
    """‖ΔW‖ after 5 SGD steps on one regression task, for r = 4, 16, 64, 256 (A ~ N(0, 1/d), B = 0)."""
    g = torch.Generator().manual_seed(8)
    d = 64
    x, w0, w_target = torch.randn(32, d, generator=g), torch.randn(d, d, generator=g) / d**0.5, torch.randn(d, d, generator=g) / d**0.5
    norms = []
    for r in (4, 16, 64, 256):
        a0 = torch.randn(r, d, generator=g) / d**0.5
        norms.append(fn(x, x @ w_target.T, w0, a0, rank_scaling(8.0, r), 0.05, 5).norm().item())
    return norms


@exercise("05.1", answer="lora_sgd_delta",
          wrong=(_lora_sgd_delta_a_frozen, _lora_sgd_delta_unscaled, _lora_sgd_delta_summed_loss), writes_code=True)
def check_lora_sgd_delta(fn) -> str:
    """Check exercise 05.1: k plain SGD steps of LoRA (A and B trained, W₀ frozen) against autograd, then a rank sweep."""
    g = torch.Generator().manual_seed(7)
    x, y, w0 = torch.randn(10, 12, generator=g), torch.randn(10, 6, generator=g), torch.randn(6, 12, generator=g)
    a0 = torch.randn(3, 12, generator=g) / 12**0.5
    out = fn(x, y, w0, a0, 2.0, 0.01, 4)
    assert isinstance(out, torch.Tensor) and out.shape == (6, 12), \
        f"应返回形状为 (out, in) = (6, 12) 的 ΔW = s·B·A，得到 {getattr(out, 'shape', out)}"
    expected = _reference_lora_sgd_delta(x, y, w0, a0, 2.0, 0.01, 4)
    assert torch.allclose(out, expected, rtol=1e-4, atol=1e-6), (
        "ΔW 与在 ½‖h − y‖²（对输出求和、对批求平均）上走 4 步 SGD 的结果不同：A 和 B 是否都在更新"
        "（B 从 0 出发，所以 A 从第 2 步才开始动）？缩放 s 是否既在前向里、也在返回的 ΔW = s·B·A 里？")
    lora_norms = _rank_sweep(fn, lambda alpha, r: alpha / r)
    rs_norms = _rank_sweep(fn, lambda alpha, r: alpha / r**0.5)
    show = lambda v: " → ".join(f"{n:.3f}" for n in v)  # noqa: E731
    return (f"走 5 步后 ‖ΔW‖，r = 4, 16, 64, 256：α/r 为 {show(lora_norms)}；α/√r 为 {show(rs_norms)}")


def _dora_merge_column_norm(w0, a, b, m, scaling):
    w = w0 + scaling * b @ a
    return m[:, None] * w / w.norm(dim=0, keepdim=True)


def _dora_merge_base_norm(w0, a, b, m, scaling):
    w = w0 + scaling * b @ a
    return m[:, None] * w / w0.norm(dim=1, keepdim=True)


@exercise("05.2", answer="dora_merge", wrong=(_dora_merge_column_norm, _dora_merge_base_norm), writes_code=True)
def check_dora_merge(fn) -> str:
    """Check exercise 05.2: the learner's merged DoRA weight (Liu et al. 2024) against m · W / ‖W‖ per row."""
    g = torch.Generator().manual_seed(6)
    w0, a, b = torch.randn(5, 8, generator=g), torch.randn(2, 8, generator=g), torch.randn(5, 2, generator=g)
    m = torch.rand(5, generator=g) + 0.5
    out = fn(w0, a, b, m, 0.5)
    assert isinstance(out, torch.Tensor) and out.shape == (5, 8), f"应返回 (5, 8) 的权重，得到 {getattr(out, 'shape', out)}"
    w = w0 + 0.5 * b @ a
    expected = m[:, None] * w / w.norm(dim=1, keepdim=True)
    assert torch.allclose(out, expected, atol=1e-5), ("W' = m ⊙ (W₀ + sBA) / ‖W₀ + sBA‖：范数按输出行 (dim=1) 计算，"
                                                      "而且是对*更新后*的权重")
    assert torch.allclose(out.norm(dim=1), m, atol=1e-5)
    return "合并后每一行的范数是 m（幅度），方向是 W₀ + sBA 的方向"


@exercise("05.3", answer="lora_qv_params", wrong=(30 * 8 * (576 + 576) * 2, 8 * (576 + 576) + 8 * (576 + 192)))
def check_lora_qv_params(value) -> str:
    """Check exercise 05.3: the learner's LoRA q/v trainable-parameter count against SmolLM2's."""
    assert isinstance(value, int), f"请给一个整数 (int)，得到 {type(value).__name__}"
    assert value == LORA_QV_PARAMS_SMOLLM2, ("30 层里每层的 q_proj 和 v_proj 各数 r·(in + out)；"
                                            "分组查询注意力 (GQA) 下 v_proj 是 576 → 3 个头 × 64 = 192")
    return f"{value:,} 个可训练参数 = SmolLM2-135M 的 {value / 134_515_008:.3%}"


def _combine_without_rescaling(a1, b1, s1, a2, b2, s2, s):
    return torch.cat([a1, a2]), torch.cat([b1, b2], dim=1)


def _combine_by_adding(a1, b1, s1, a2, b2, s2, s):
    return a1 + a2, (s1 * b1 + s2 * b2) / s


@exercise("05.4", answer="combine_adapters", wrong=(_combine_without_rescaling, _combine_by_adding), writes_code=True)
def check_combine_adapters(fn) -> str:
    """Check exercise 05.4: two LoRA adapters merged into one of rank r₁ + r₂ (peft ``combination_type="cat"``)."""
    g = torch.Generator().manual_seed(9)
    for r1, r2 in ((3, 3), (2, 5)):
        a1, b1 = torch.randn(r1, 10, generator=g), torch.randn(7, r1, generator=g)
        a2, b2 = torch.randn(r2, 10, generator=g), torch.randn(7, r2, generator=g)
        out = fn(a1, b1, 0.5, a2, b2, 4.0, 2.0)
        assert isinstance(out, tuple) and len(out) == 2, "应返回一对 (a, b)"
        a, b = out
        assert a.shape == (r1 + r2, 10) and b.shape == (7, r1 + r2), \
            f"秩应为 r₁ + r₂ = {r1 + r2}：a 形状 ({r1 + r2}, 10)、b 形状 (7, {r1 + r2})，得到 {tuple(a.shape)}、{tuple(b.shape)}"
        expected = 0.5 * b1 @ a1 + 4.0 * b2 @ a2
        assert torch.allclose(2.0 * b @ a, expected, rtol=1e-5, atol=1e-5), \
            "s·b @ a 应等于 s₁·B₁A₁ + s₂·B₂A₂：合并后每个适配器仍要保留自己的缩放"
    return "一个秩为 r₁ + r₂ 的适配器，它的增量恰好是两个增量之和"
