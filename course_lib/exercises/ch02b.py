"""Exercise checks for chapter 02b (non-Transformer structures and VLMs)."""

from __future__ import annotations

import torch

from course_lib.exercises import exercise


def _gru_swapped_gate(x, h, w_ih, w_hh, b_ih, b_hh):
    """Wrong: h' = z ⊙ n + (1 − z) ⊙ h (the update gate used the other way round)."""
    i_r, i_z, i_n = (x @ w_ih.T + b_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = (h @ w_hh.T + b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return z * n + (1 - z) * h


def _gru_bias_outside_reset(x, h, w_ih, w_hh, b_ih, b_hh):
    """Wrong: the reset gate multiplies W_hn h but not b_hn (PyTorch keeps b_hn inside r ⊙ (…))."""
    i_r, i_z, i_n = (x @ w_ih.T + b_ih).chunk(3, dim=-1)
    h_r, h_z, _ = (h @ w_hh.T + b_hh).chunk(3, dim=-1)
    w_hn, b_hn = w_hh.chunk(3, dim=0)[2], b_hh.chunk(3)[2]
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * (h @ w_hn.T) + b_hn)
    return (1 - z) * n + z * h


@exercise("02b.1", answer="gru_cell", wrong=(_gru_swapped_gate, _gru_bias_outside_reset), writes_code=True)
def check_gru_cell(gru_cell) -> str:
    """Check exercise 02b.1: the learner's GRU cell (Cho et al. 2014) against ``torch.nn.GRUCell``."""
    torch.manual_seed(0)
    ref = torch.nn.GRUCell(5, 7)
    x, h = torch.randn(3, 5), torch.randn(3, 7)
    with torch.no_grad():
        got = gru_cell(x, h, ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh)
        expected = ref(x, h)
    assert isinstance(got, torch.Tensor) and got.shape == expected.shape, \
        f"gru_cell 应返回形状 {tuple(expected.shape)} 的 h'，得到 {getattr(got, 'shape', type(got))}"
    err = (got - expected).abs().max().item()
    assert err < 1e-5, (f"max |gru_cell − torch.nn.GRUCell| = {err:.3g}；检查门的顺序 r、z、n，"
                        "h' = (1 − z) ⊙ n + z ⊙ h，以及 r 乘的是 (W_hn h + b_hn)")
    return f"gru_cell 与 torch.nn.GRUCell 一致（max |diff| {err:.1e}）"


def _retention_recurrent(q, k, v, gamma):
    """Reference: S_t = γ S_{t-1} + k_t v_tᵀ, o_t = q_tᵀ S_t."""
    S = q.new_zeros(q.shape[-1], v.shape[-1])
    outs = []
    for t in range(q.shape[0]):
        S = gamma * S + k[t, :, None] * v[t, None, :]
        outs.append(q[t] @ S)
    return torch.stack(outs)


def _retention_no_mask(q, k, v, gamma):
    """Wrong: decay γ^|t−s| on both sides, so a token sees the future."""
    t = torch.arange(q.shape[0])
    return ((q @ k.T) * gamma ** (t[:, None] - t[None, :]).abs().float()) @ v


def _retention_reversed_decay(q, k, v, gamma):
    """Wrong: γ^(s−t) for s ≤ t grows instead of decaying with distance."""
    t = torch.arange(q.shape[0])
    diff = (t[None, :] - t[:, None]).float()
    return ((q @ k.T) * (gamma ** diff) * (t[:, None] >= t[None, :])) @ v


@exercise("02b.2", answer="retention_parallel", wrong=(_retention_no_mask, _retention_reversed_decay),
          writes_code=True)
def check_retention_parallel(retention_parallel) -> str:
    """Check exercise 02b.2: the learner's parallel retention (RetNet, Sun et al. 2023) against its recurrent form."""
    torch.manual_seed(0)
    q, k, v = torch.randn(12, 4), torch.randn(12, 4), torch.randn(12, 3)
    for gamma in (0.9, 0.5):
        got = retention_parallel(q, k, v, gamma)
        expected = _retention_recurrent(q, k, v, gamma)
        assert isinstance(got, torch.Tensor) and got.shape == expected.shape, \
            f"retention_parallel 应返回 (T, d_v) = {tuple(expected.shape)}，得到 {getattr(got, 'shape', type(got))}"
        err = (got - expected).abs().max().item()
        assert err < 1e-4, (f"γ = {gamma}：max |并行 − 循环| = {err:.3g}；s ≤ t 时 M_ts 应为 γ^(t−s)，"
                            "对角线以上为 0")
    return "并行形态 (QKᵀ ⊙ M)V 与循环形态一致（γ = 0.9 和 0.5）"


def _image_to_text_accuracy(image_emb, text_emb, labels):
    """Wrong: the forward direction (each image picks a caption), not text→image."""
    return ((image_emb @ text_emb.T).argmax(dim=1) == labels).float().mean().item()


def _text_to_image_wrong_axis(image_emb, text_emb, labels):
    """Wrong: argmax over the caption axis of the (captions × images) matrix."""
    best = (text_emb @ image_emb.T).argmax(dim=0)  # (M,): a caption per image
    return (best == labels).float().mean().item()


@exercise("02b.3", answer="text_to_image_accuracy", wrong=(_image_to_text_accuracy, _text_to_image_wrong_axis),
          writes_code=True)
def check_text_to_image_accuracy(text_to_image_accuracy) -> str:
    """Check exercise 02b.3: the learner's CLIP-style text→image top-1 accuracy against an argmax reference."""
    g = torch.Generator().manual_seed(0)
    n_captions, per_caption, dim = 6, 5, 8
    text_emb = torch.nn.functional.normalize(torch.randn(n_captions, dim, generator=g), dim=-1)
    labels = torch.arange(n_captions).repeat_interleave(per_caption)                      # (M,)
    image_emb = torch.nn.functional.normalize(text_emb[labels] + 0.9 * torch.randn(len(labels), dim, generator=g), dim=-1)
    best = (text_emb @ image_emb.T).argmax(dim=1)
    expected = (labels[best] == torch.arange(n_captions)).float().mean().item()
    got = float(text_to_image_accuracy(image_emb, text_emb, labels))
    assert abs(got - expected) < 1e-6, (f"得到 {got:.3f}，小测试集上应为 {expected:.3f}：对每条文字描述 (caption) "
                                        "选出最相似的图像，再看那张图像的标签是否就是这条描述")
    return f"6 条描述的测试集上 text→image top-1 = {expected:.3f}"


def _euler_b(delta, A, B):
    """Wrong: the simplified (Euler) form Δ·B that Mamba uses, not the exact ZOH."""
    return delta[..., None] * B[..., None, :]


def _zoh_b_missing_delta(delta, A, B):
    """Wrong: (e^{ΔA} − 1) B, forgetting to divide by A."""
    return torch.expm1(delta[..., None] * A) * B[..., None, :]


@exercise("02b.4", answer="zoh_B", wrong=(_euler_b, _zoh_b_missing_delta))
def check_zoh_b(zoh_B) -> str:
    """Check exercise 02b.4: the learner's zero-order-hold B̄ (Mamba, Gu & Dao 2023) against the integral done numerically."""
    g = torch.Generator().manual_seed(0)
    delta = torch.nn.functional.softplus(torch.randn(2, 3, generator=g)) + 0.5   # (B, D): large steps
    A = -torch.exp(torch.randn(3, 4, generator=g))                              # (D, N)
    B = torch.randn(2, 4, generator=g)                                           # (B, N)
    got = zoh_B(delta, A, B)
    # exact: \bar B = ∫_0^Δ e^{Aτ} dτ · B, integrated numerically (midpoint rule, 4000 steps)
    fractions = (torch.arange(4000) + 0.5) / 4000                               # midpoint rule over [0, Δ]
    integral = torch.stack([torch.exp(f * delta[..., None] * A) for f in fractions]).mean(0) * delta[..., None]
    expected = integral * B[:, None, :]
    assert isinstance(got, torch.Tensor) and got.shape == expected.shape, \
        f"zoh_B 应返回 (B, D, N) = {tuple(expected.shape)}，得到 {getattr(got, 'shape', type(got))}"
    err = (got - expected).abs().max().item()
    assert err < 1e-4, (f"max |zoh_B − ∫₀^Δ e^(Aτ)dτ·B| = {err:.3g}；精确的零阶保持 (ZOH) 是 (e^(ΔA) − 1)/A · B，"
                        "不是欧拉近似 (Euler) Δ·B")
    return f"ZOH B̄ = (e^(ΔA) − 1)/A · B 与积分一致（max |diff| {err:.1e}）"
