"""course_lib.attention against PyTorch's own attention.

Tolerance: ``torch.testing.assert_close`` fp32 defaults (rtol 1.3e-6, atol 1e-5). Ours and the
reference compute the same formula in fp32 and differ only in the order of floating-point sums
(matmul blocking, online vs one-shot softmax), which moves results by a few ulps.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.attention import (
    MultiHeadAttention,
    blockwise_attention,
    causal_mask,
    mha_state_from_torch,
    padding_mask,
    scaled_dot_product_attention,
)


def _qkv(b=2, h=3, t_q=7, t_k=9, d=16, d_v=8):
    return torch.randn(b, h, t_q, d), torch.randn(b, h, t_k, d), torch.randn(b, h, t_k, d_v)


@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal"])
def test_sdpa_matches_torch(kind):
    q, k, v = _qkv(t_q=9, t_k=9)
    mask = {"none": None, "bool": torch.rand(2, 1, 9, 9) > 0.3, "float": torch.randn(2, 3, 9, 9),
            "causal": causal_mask(9)}[kind]
    if kind == "bool":
        mask[..., 0] = True  # keep every row non-empty (torch gives NaN on fully masked rows)
    ours, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 9))


def _torch_mha(d_model=32, heads=4):
    ref = torch.nn.MultiheadAttention(d_model, heads, batch_first=True).eval()
    with torch.no_grad():  # random biases so the bias mapping is tested too (torch inits them to 0)
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    ours = MultiHeadAttention(d_model, heads).eval()
    ours.load_state_dict(mha_state_from_torch(ref.state_dict()))
    return ours, ref


@pytest.mark.parametrize("case", ["self", "cross", "padded", "causal"])
def test_multi_head_attention_matches_torch(case):
    ours, ref = _torch_mha()
    x = torch.randn(2, 6, 32)
    memory = torch.randn(2, 9, 32) if case in ("cross", "padded") else x
    tokens = torch.tensor([[5, 6, 7, 8, 9, 1, 1, 1, 1], [5, 6, 7, 8, 9, 5, 6, 7, 8]])
    ref_kwargs, mask = {}, None
    if case == "padded":
        mask = padding_mask(tokens, pad_id=1)  # (B, 1, 1, S), True = attend
        ref_kwargs["key_padding_mask"] = tokens == 1  # torch: True = ignore
    if case == "causal":
        mask = causal_mask(6)
        ref_kwargs["attn_mask"] = ~mask
    out, weights = ours(x, memory, memory, mask)
    ref_out, ref_weights = ref(x, memory, memory, need_weights=True, average_attn_weights=False, **ref_kwargs)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(weights, ref_weights)
    assert weights.shape == (2, 4, 6, memory.shape[1])
    if case == "padded":
        assert weights[0, :, :, 5:].abs().max() == 0  # padding keys get no weight


def test_multi_head_attention_gradients_match_torch():
    ours, ref = _torch_mha()
    x = torch.randn(2, 5, 32)
    ours(x, x, x)[0].square().sum().backward()
    ref(x, x, x, need_weights=False)[0].square().sum().backward()
    grads = mha_state_from_torch({n: p.grad for n, p in ref.named_parameters()})
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, grads[name], msg=name)


@settings(max_examples=40, deadline=None)
@given(t_q=st.integers(1, 40), t_k=st.integers(1, 70), d=st.integers(1, 24), block=st.integers(1, 80),
       mask_kind=st.sampled_from(["none", "bool", "float", "causal"]), seed=st.integers(0, 2**16))
def test_blockwise_equals_naive(t_q, t_k, d, block, mask_kind, seed):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 2, t, d, generator=gen) for t in (t_q, t_k, t_k))
    mask = None
    if mask_kind == "bool":  # random, so some rows may be fully masked: both must give zeros there
        mask = torch.rand(2, 1, t_q, t_k, generator=gen) > 0.5
    elif mask_kind == "float":
        mask = torch.randn(1, 2, t_q, t_k, generator=gen)
    elif mask_kind == "causal" and t_q <= t_k:
        mask = causal_mask(t_q, t_k)
    naive, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    torch.testing.assert_close(blockwise_attention(q, k, v, mask=mask, block_size=block), naive)


def test_blockwise_matches_torch_sdpa_long():
    q, k, v = _qkv(b=1, h=2, t_q=300, t_k=300, d=32, d_v=32)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(blockwise_attention(q, k, v, mask=causal_mask(300), block_size=64), expected)


def test_fully_masked_rows_are_zero():
    q, k, v = _qkv()
    mask = torch.zeros(7, 9, dtype=torch.bool)
    assert scaled_dot_product_attention(q, k, v, mask)[0].abs().max() == 0
    assert blockwise_attention(q, k, v, mask, block_size=4).abs().max() == 0


def test_bad_input():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiHeadAttention(30, 4)
    with pytest.raises(ValueError, match="positive ints"):
        MultiHeadAttention(0, 4)
    mha = MultiHeadAttention(32, 4)
    x = torch.randn(2, 5, 32)
    with pytest.raises(ValueError, match=r"query must have shape \(B, T, d_model=32\)"):
        mha(torch.randn(2, 5, 16), x, x)
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(x, x, x, mask=torch.ones(5, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(x, x, x, mask=torch.ones(3, 1, 5, 5, dtype=torch.bool))  # batch 3 vs 2
    with pytest.raises(TypeError, match="mask must be bool"):
        mha(x, x, x, mask=torch.ones(5, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="batch and key/value lengths"):
        mha(x, torch.randn(2, 6, 32), torch.randn(2, 7, 32))
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        blockwise_attention(q, k, v, block_size=0)
    with pytest.raises(ValueError, match="does not broadcast"):
        blockwise_attention(q, k, v, mask=torch.ones(7, 8, dtype=torch.bool))
    with pytest.raises(TypeError, match="floating-point"):
        blockwise_attention(q.long(), k, v)
    with pytest.raises(ValueError, match="missing"):
        mha_state_from_torch({"in_proj_weight": torch.zeros(96, 32)})


def test_peak_memory_counts_live_tensor_bytes():
    from course_lib.profiling import peak_memory

    x = torch.ones(1000)

    def two_temporaries():
        a = x * 2              # 4 kB
        b = a.view(10, 100).t()  # a view: no new bytes
        c = b + 1              # 4 kB, while a is alive -> 8 kB
        del a, b
        return c.sum()         # c alive + 4 bytes

    result, peak = peak_memory(two_temporaries)
    assert result.item() == 3000 and peak == 8000
    _, naive = peak_memory(lambda: scaled_dot_product_attention(*_qkv(b=1, h=1, t_q=64, t_k=64, d=8, d_v=8))[0])
    _, blocked = peak_memory(lambda: blockwise_attention(*_qkv(b=1, h=1, t_q=64, t_k=64, d=8, d_v=8), block_size=8))
    assert blocked < naive
    with pytest.raises(TypeError, match="callable"):
        peak_memory(42)
