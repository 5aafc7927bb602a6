"""Linear attention and RWKV-4: parallel (training) form = recurrent (inference) form, and RWKV = HF.

Tolerance: fp32 ``assert_close`` defaults (rtol 1.3e-6, atol 1e-5). The two forms add the same positive
terms in a different order (a matrix product vs a running sum; a softmax vs a rescaled running sum), so they
agree to a few ulp; the outputs are convex combinations of the values (|v| ≲ 4), so atol 1e-5 is tight.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import RwkvConfig
from transformers.models.rwkv.modeling_rwkv import RwkvSelfAttention, rwkv_linear_attention_cpu

from course_lib.models.linear_attention import (
    LinearAttention,
    LinearAttentionConfig,
    RWKVConfig,
    RWKVTimeMix,
    linear_attention_parallel,
    linear_attention_recurrent,
    rwkv_wkv_parallel,
    rwkv_wkv_recurrent,
)

sizes = dict(b=st.integers(1, 3), t=st.integers(1, 24), d=st.integers(1, 8), seed=st.integers(0, 2**16))


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 3), d_v=st.integers(1, 8), **sizes)
def test_linear_attention_parallel_equals_recurrent(b, t, d, seed, h, d_v):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(b, h, t, d, generator=g), torch.randn(b, h, t, d, generator=g)
    v = torch.randn(b, h, t, d_v, generator=g)
    out_rec, (s, z) = linear_attention_recurrent(q, k, v)
    torch.testing.assert_close(linear_attention_parallel(q, k, v), out_rec)
    assert s.shape == (b, h, d, d_v) and z.shape == (b, h, d)  # the state does not grow with T


def test_linear_attention_state_carries_over():
    q, k, v = torch.randn(2, 2, 10, 4), torch.randn(2, 2, 10, 4), torch.randn(2, 2, 10, 3)
    first, state = linear_attention_recurrent(q[..., :6, :], k[..., :6, :], v[..., :6, :])
    second, _ = linear_attention_recurrent(q[..., 6:, :], k[..., 6:, :], v[..., 6:, :], state)
    torch.testing.assert_close(torch.cat([first, second], -2), linear_attention_parallel(q, k, v))


def test_linear_attention_is_causal():
    q, k, v = torch.randn(1, 8, 4), torch.randn(1, 8, 4), torch.randn(1, 8, 4)
    out = linear_attention_parallel(q, k, v)
    v2 = v.clone()
    v2[:, 5:] += 10.0  # change the future
    torch.testing.assert_close(linear_attention_parallel(q, k, v2)[:, :5], out[:, :5])
    assert not torch.allclose(linear_attention_parallel(q, k, v2)[:, 5:], out[:, 5:])


def test_linear_attention_layer_modes_agree():
    layer = LinearAttention(LinearAttentionConfig(d_model=12, n_heads=3))
    x = torch.randn(2, 9, 12)
    par, none = layer(x)
    rec, state = layer(x, mode="recurrent")
    assert none is None
    torch.testing.assert_close(par, rec)
    a, st1 = layer(x[:, :4], mode="recurrent")
    c, _ = layer(x[:, 4:], mode="recurrent", state=st1)
    torch.testing.assert_close(torch.cat([a, c], 1), par)


def _wkv_inputs(b, t, c, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(c, generator=g), torch.randn(c, generator=g),
            scale * torch.randn(b, t, c, generator=g), torch.randn(b, t, c, generator=g))


@settings(max_examples=25, deadline=None)
@given(**sizes)
def test_rwkv_parallel_equals_recurrent_equals_hf(b, t, d, seed):
    decay, first, k, v = _wkv_inputs(b, t, d, seed)
    rec, _ = rwkv_wkv_recurrent(decay, first, k, v)
    torch.testing.assert_close(rwkv_wkv_parallel(decay, first, k, v), rec)
    ref, _ = rwkv_linear_attention_cpu(decay, first, k, v)
    torch.testing.assert_close(rec, ref)


def test_rwkv_large_keys_do_not_overflow():
    """k up to ±150: e^k overflows fp32 without the running-max trick; both forms stay finite and equal."""
    decay, first, k, v = _wkv_inputs(2, 16, 5, 0, scale=50.0)
    rec, state = rwkv_wkv_recurrent(decay, first, k, v)
    assert torch.isfinite(rec).all() and all(torch.isfinite(s).all() for s in state)
    torch.testing.assert_close(rwkv_wkv_parallel(decay, first, k, v), rec)
    torch.testing.assert_close(rec, rwkv_linear_attention_cpu(decay, first, k, v)[0])


def test_rwkv_state_equals_hf_state():
    decay, first, k, v = _wkv_inputs(2, 7, 6, 1)
    _, ours = rwkv_wkv_recurrent(decay, first, k, v)
    _, ref = rwkv_linear_attention_cpu(decay, first, k, v, return_state=True)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)


def test_rwkv_time_mix_equals_hf_self_attention():
    """Same parameter names as HF ``RwkvSelfAttention``: the name table is the identity."""
    c = 16
    ref = RwkvSelfAttention(RwkvConfig(hidden_size=c, attention_hidden_size=c, context_length=64), layer_id=0)
    ours = RWKVTimeMix(RWKVConfig(hidden_size=c))
    with torch.no_grad():
        for p in ref.parameters():  # HF leaves these uninitialised (torch.empty) until the model's init
            p.copy_(torch.randn_like(p) * 0.5)
    missing = ours.load_state_dict(ref.state_dict(), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    x = torch.randn(3, 11, c)
    with torch.no_grad():
        expected, _ = ref(x)
        par, _ = ours(x)
        rec, _ = ours(x, mode="recurrent")
    torch.testing.assert_close(par, expected)
    torch.testing.assert_close(rec, expected)
    with torch.no_grad():  # continuing from a state (token shift + WKV state) equals one pass
        a, state = ours(x[:, :5], mode="recurrent")
        b, _ = ours(x[:, 5:], mode="recurrent", state=state)
    torch.testing.assert_close(torch.cat([a, b], 1), expected)


def test_bad_input():
    with pytest.raises(ValueError, match="q, k must be"):
        linear_attention_parallel(torch.randn(1, 4, 3), torch.randn(1, 4, 2), torch.randn(1, 4, 3))
    with pytest.raises(TypeError, match="q must be a floating-point tensor"):
        linear_attention_recurrent(torch.ones(1, 4, 3, dtype=torch.long), torch.randn(1, 4, 3), torch.randn(1, 4, 3))
    with pytest.raises(ValueError, match=r"time_decay and time_first must have shape \(3,\)"):
        rwkv_wkv_parallel(torch.randn(4), torch.randn(3), torch.randn(1, 5, 3), torch.randn(1, 5, 3))
    with pytest.raises(ValueError, match=r"k and v must both have shape \(B, T, C\)"):
        rwkv_wkv_recurrent(torch.randn(3), torch.randn(3), torch.randn(5, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"LinearAttentionConfig.d_model \(10\) must be divisible by n_heads \(3\)"):
        LinearAttention(LinearAttentionConfig(d_model=10, n_heads=3))
    with pytest.raises(ValueError, match="LinearAttentionConfig.n_heads must be a positive int, got 0"):
        LinearAttentionConfig(n_heads=0)
    layer, mix = LinearAttention(LinearAttentionConfig(8, 2)), RWKVTimeMix(RWKVConfig(8))
    for module in (layer, mix):
        with pytest.raises(ValueError, match="mode must be one of"):
            module(torch.randn(1, 3, 8), mode="chunked")
        with pytest.raises(ValueError, match=r"x must have shape \(B, T, 8\)"):
            module(torch.randn(1, 3, 7))
        with pytest.raises(ValueError, match="state is only used with mode='recurrent'"):
            module(torch.randn(1, 3, 8), state=module(torch.randn(1, 3, 8), mode="recurrent")[1])
