"""Exercise checks of chapter 01 (the encoder–decoder Transformer).

01.1 ``pe_value``: one entry of the sinusoidal positional encoding (Vaswani et al. 2017 §3.5).
01.2 ``encoder_layer_params``: the parameter count of one encoder layer, as a formula.
01.3 ``streaming_logsumexp``: the online-softmax normaliser, one block of scores at a time.
01.4 ``PreNormEncoderLayer``: the pre-norm encoder layer ``x + Sublayer(LayerNorm(x))`` (model code).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_lib import attention, transformer
from course_lib.exercises import exercise


# ---------------------------------------------------------------- 01.1 positional encoding
def _pe_exponent_uses_i(pos, i, d_model):
    """Wrong: the exponent uses the dimension i itself, not the even index 2⌊i/2⌋ of its sin/cos pair."""
    angle = pos / 10000 ** (i / d_model)
    return math.sin(angle) if i % 2 == 0 else math.cos(angle)


def _pe_sin_cos_swapped(pos, i, d_model):
    """Wrong: cos on even dimensions, sin on odd ones."""
    angle = pos / 10000 ** ((i - i % 2) / d_model)
    return math.cos(angle) if i % 2 == 0 else math.sin(angle)


@exercise("01.1", answer="pe_value", wrong=(_pe_exponent_uses_i, _pe_sin_cos_swapped), writes_code=True)
def check_pe_value(pe_value) -> str:
    """Check exercise 01.1: the learner's sinusoidal PE entry (Vaswani et al. 2017 §3.5) against ``sinusoidal_table``."""
    table = transformer.sinusoidal_table(64, 32)
    for pos, i in [(0, 0), (0, 1), (1, 0), (3, 4), (7, 5), (19, 15), (40, 30), (63, 31)]:
        got = float(pe_value(pos, i, 32))
        want = table[pos, i].item()
        assert abs(got - want) < 1e-5, (
            f"pe_value(pos={pos}, i={i}, d_model=32) = {got:.6f}, 应为 {want:.6f}"
            f"（偶数维用 sin、奇数维用 cos；第 2k 与 2k+1 维共用频率 10000^(-2k/d_model)）")
    return "与 course_lib.transformer.sinusoidal_table 的 8 个位置 × 维度都一致"


# ---------------------------------------------------------------- 01.2 parameter count
def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _params_without_biases(d_model, d_ff):
    """Wrong: weights only (no biases, no LayerNorm)."""
    return 4 * d_model * d_model + 2 * d_model * d_ff


def _params_without_layernorm(d_model, d_ff):
    """Wrong: forgets the two LayerNorms' γ and β."""
    return 4 * (d_model * d_model + d_model) + (d_model * d_ff + d_ff) + (d_ff * d_model + d_model)


@exercise("01.2", answer="encoder_layer_params", wrong=(_params_without_biases, _params_without_layernorm))
def check_encoder_layer_params(encoder_layer_params) -> str:
    """Check exercise 01.2: the learner's encoder-layer parameter count against ``EncoderLayer``'s real count."""
    for d_model, heads, d_ff in [(32, 4, 64), (512, 8, 2048), (96, 3, 384)]:
        layer = transformer.EncoderLayer(transformer.TransformerConfig(5, 5, d_model=d_model, num_heads=heads, d_ff=d_ff))
        got, want = encoder_layer_params(d_model, d_ff), _count(layer)
        assert got == want, (f"encoder_layer_params({d_model}, {d_ff}) = {got}, 实际层里有 {want} 个参数"
                             f"（差 {want - got}：别忘了每个 Linear 的偏置和两个 LayerNorm 的 γ、β）")
    return "三组 (d_model, h, d_ff) 都与 EncoderLayer 的实际参数个数相等——与头数 h 无关"


# ---------------------------------------------------------------- 01.3 online log-sum-exp
def _lse_without_max(s, block):
    """Wrong: sums exp(s) block by block without subtracting the running maximum (overflows)."""
    total = 0.0
    for start in range(0, len(s), block):
        total += torch.exp(s[start:start + block]).sum().item()
    return math.log(total)


def _lse_without_rescale(s, block):
    """Wrong: tracks the running max but does not rescale the old sum when the max grows."""
    m, l = float("-inf"), 0.0
    for start in range(0, len(s), block):
        chunk = s[start:start + block]
        m_new = max(m, chunk.max().item())
        l = l + torch.exp(chunk - m_new).sum().item()
        m = m_new
    return m + math.log(l)


class _NoWholeExp(torch.Tensor):
    """A tensor that refuses ``exp`` over more than ``limit`` elements at once."""

    limit = 0

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.exp, torch.Tensor.exp, torch.logsumexp, torch.Tensor.logsumexp,
                    torch.softmax, torch.Tensor.softmax):
            if args[0].numel() > cls.limit:
                raise AssertionError(f"一次对 {args[0].numel()} 个元素调用了 {func.__name__}，"
                                     f"每次最多只能看 block={cls.limit} 个")
        return super().__torch_function__(func, types, args, kwargs or {})


@exercise("01.3", answer="streaming_logsumexp", wrong=(_lse_without_max, _lse_without_rescale))
def check_streaming_logsumexp(streaming_logsumexp) -> str:
    """Check exercise 01.3: the learner's online log-sum-exp (running max, rescaled sum) against ``torch.logsumexp``."""
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2_000, generator=g) * 30   # |s| up to ~120: exp(s) overflows float32
    s[1_500] = 150.0                          # the maximum arrives late: the old sum must be rescaled
    want = torch.logsumexp(s.double(), 0).item()
    for block in (1, 7, 128, 2_000):
        _NoWholeExp.limit = block
        got = float(streaming_logsumexp(s.as_subclass(_NoWholeExp), block))
        assert math.isfinite(got), f"block={block}: 得到 {got}——先减去运行最大值 m 再取 exp，否则 e^s 溢出"
        assert abs(got - want) < 1e-3, (f"block={block}: 得到 {got:.4f}，应为 {want:.4f}"
                                        f"（最大值变大时，旧的累加和要乘 e^(m - m_new)）")
    return "block = 1, 7, 128, 2000 都等于 torch.logsumexp，且每次只对一块取 exp"


# ---------------------------------------------------------------- 01.4 pre-norm encoder layer
class _LayerParts(nn.Module):
    """The stub's ``__init__``: the same parameter names as ``transformer.EncoderLayer``."""

    def __init__(self, d_model, num_heads, d_ff):
        super().__init__()
        self.self_attn = attention.MultiHeadAttention(d_model, num_heads)
        self.feed_forward = transformer.PositionwiseFeedForward(d_model, d_ff)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)


class _PostNormLayer(_LayerParts):
    """Wrong: the paper's post-norm order LayerNorm(x + Sublayer(x))."""

    def forward(self, x, mask=None):
        x = self.norm1(x + self.self_attn(x, x, x, mask)[0])
        return self.norm2(x + self.feed_forward(x))


class _NoResidualLayer(_LayerParts):
    """Wrong: normalises first but drops the residual connections."""

    def forward(self, x, mask=None):
        h = self.norm1(x)
        x = self.self_attn(h, h, h, mask)[0]
        return self.feed_forward(self.norm2(x))


class _KeysNotNormedLayer(_LayerParts):
    """Wrong: normalises the queries but attends over the un-normalised x as keys and values."""

    def forward(self, x, mask=None):
        x = x + self.self_attn(self.norm1(x), x, x, mask)[0]
        return x + self.feed_forward(self.norm2(x))


@exercise("01.4", answer="PreNormEncoderLayer", wrong=(_PostNormLayer, _NoResidualLayer, _KeysNotNormedLayer),
          writes_code=True)
def check_pre_norm_encoder_layer(layer_class) -> str:
    """Check exercise 01.4: the learner's Pre-LN encoder layer against ``EncoderLayer(norm_first=True)``."""
    torch.manual_seed(0)
    cfg = transformer.TransformerConfig(13, 13, d_model=32, num_heads=4, d_ff=64, dropout=0.0, norm_first=True)
    reference = transformer.EncoderLayer(cfg).eval()
    for p in reference.parameters():  # LayerNorm starts at γ=1, β=0: perturb it so a missing norm shows
        nn.init.normal_(p, std=0.3)
    ours = layer_class(32, 4, 64).eval()
    missing, unexpected = ours.load_state_dict(reference.state_dict(), strict=False)
    assert not missing and not unexpected, (f"参数名要与 EncoderLayer 相同（self_attn, feed_forward, norm1, norm2）："
                                           f"缺 {missing}，多 {unexpected}")
    x = torch.randn(2, 6, 32)
    mask = attention.padding_mask(torch.tensor([[5, 6, 7, 8, 0, 0], [5, 6, 7, 8, 9, 10]]), 0)
    with torch.no_grad():
        got = ours(x, mask)
        got = got[0] if isinstance(got, tuple) else got
        want = reference(x, mask)[0]
    assert got.shape == want.shape, f"输出形状 {tuple(got.shape)}，应为 {tuple(want.shape)}"
    err = (got - want).abs().max().item()
    assert err < 1e-5, (f"与 EncoderLayer(norm_first=True) 的输出最大差 {err:.3g}："
                        f"pre-norm 是 x = x + SelfAttn(LN1(x))，再 x = x + FFN(LN2(x))，且 LN 的输出同时作 Q、K、V")
    return f"与 course_lib 的 EncoderLayer(norm_first=True) 一致（带填充掩码，max 差 {err:.1e}）"
