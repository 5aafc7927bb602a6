"""Selective scan: sequential = chunked = fully parallel, = HF's reference scan; MambaMixer = HF ``MambaMixer``.

Tolerance: fp32 ``assert_close`` defaults (rtol 1.3e-6, atol 1e-5) everywhere. The chunked form computes
e^{a_t − a_s} from a cumulative sum instead of multiplying e^{Δ A} step by step, so the two differ by rounding
only; with T ≤ 24 and |a_t| ≲ 50 that stays within the defaults (measured; see the hypothesis test).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import MambaConfig
from transformers.models.mamba import modeling_mamba

from course_lib.models.ssm import (
    MambaMixer,
    SelectiveSSMConfig,
    selective_scan_chunked,
    selective_scan_sequential,
)


def _scan_inputs(b, t, d, n, seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, t, d, generator=g)
    delta = torch.nn.functional.softplus(torch.randn(b, t, d, generator=g))  # Δ > 0 as after softplus
    A = -torch.exp(torch.randn(d, n, generator=g))  # A < 0: decays
    B, C = torch.randn(b, t, n, generator=g), torch.randn(b, t, n, generator=g)
    D = torch.randn(d, generator=g)
    return u, delta, A, B, C, D


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 3), t=st.integers(1, 24), d=st.integers(1, 6), n=st.integers(1, 5),
       chunk=st.integers(1, 24) | st.none(), seed=st.integers(0, 2**16))
def test_sequential_equals_chunked(b, t, d, n, chunk, seed):
    u, delta, A, B, C, D = _scan_inputs(b, t, d, n, seed)
    y_seq, h_seq = selective_scan_sequential(u, delta, A, B, C, D)
    y_par, h_par = selective_scan_chunked(u, delta, A, B, C, D, chunk_size=chunk)
    torch.testing.assert_close(y_par, y_seq)
    torch.testing.assert_close(h_par, h_seq)


def test_scan_equals_hf_reference_scan():
    """HF's torch fallback of the ``selective_scan_fn`` kernel, layout (B, D, T), with the gate z."""
    u, delta, A, B, C, D = _scan_inputs(2, 13, 5, 4, 0)
    z = torch.randn(2, 13, 5)
    ref = modeling_mamba.mamba_selective_scan(u.transpose(1, 2), delta.transpose(1, 2), A, B.transpose(1, 2),
                                              C.transpose(1, 2), D=D, z=z.transpose(1, 2))
    y, _ = selective_scan_sequential(u, delta, A, B, C, D)
    torch.testing.assert_close(y * torch.nn.functional.silu(z), ref.transpose(1, 2))


def test_state_carries_over():
    u, delta, A, B, C, D = _scan_inputs(2, 10, 3, 4, 1)
    y_full, h_full = selective_scan_sequential(u, delta, A, B, C, D)
    y1, h1 = selective_scan_chunked(u[:, :6], delta[:, :6], A, B[:, :6], C[:, :6], D)
    y2, h2 = selective_scan_chunked(u[:, 6:], delta[:, 6:], A, B[:, 6:], C[:, 6:], D, state=h1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y_full)
    torch.testing.assert_close(h2, h_full)


def _hf_pair(hidden=16, n=4, expand=2, k=4, rank=3):
    hf_config = MambaConfig(hidden_size=hidden, state_size=n, intermediate_size=expand * hidden, conv_kernel=k,
                            time_step_rank=rank, num_hidden_layers=1, vocab_size=10, use_bias=False,
                            use_conv_bias=True, hidden_act="silu")
    ref = modeling_mamba.MambaMixer(hf_config, layer_idx=0).eval()
    ours = MambaMixer(SelectiveSSMConfig(hidden_size=hidden, state_size=n, expand=expand, conv_kernel=k,
                                         time_step_rank=rank, chunk_size=5))
    with torch.no_grad():
        for p in ref.parameters():  # random values everywhere (HF initialises D to ones, A_log to S4D)
            p.add_(0.3 * torch.randn_like(p))
    result = ours.load_state_dict(ref.state_dict(), strict=True)  # identical names: in_proj, conv1d, x_proj, ...
    assert not result.missing_keys and not result.unexpected_keys
    return ours.eval(), ref


def test_mamba_mixer_equals_hf():
    ours, ref = _hf_pair()
    x = torch.randn(2, 17, 16)
    with torch.no_grad():
        expected = ref(x)
        par, _ = ours(x)
        rec, _ = ours(x, mode="recurrent")
    torch.testing.assert_close(par, expected)
    torch.testing.assert_close(rec, expected)


def test_mamba_mixer_token_by_token():
    """Decoding one token at a time with (conv_state, ssm_state) equals the parallel pass."""
    ours, _ = _hf_pair()
    x = torch.randn(2, 9, 16)
    with torch.no_grad():
        full, _ = ours(x)
        state, outs = None, []
        for t in range(9):
            y, state = ours(x[:, t:t + 1], mode="recurrent", state=state)
            outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1), full)
    conv_state, ssm_state = state
    assert conv_state.shape == (2, 32, 3) and ssm_state.shape == (2, 32, 4)  # fixed size, whatever T is


def test_bad_input():
    u, delta, A, B, C, D = _scan_inputs(1, 5, 3, 2, 0)
    with pytest.raises(ValueError, match=r"u must have shape \(B, T, D\)"):
        selective_scan_sequential(u[0], delta, A, B, C, D)
    with pytest.raises(ValueError, match="delta must have the shape of u"):
        selective_scan_chunked(u, delta[:, :4], A, B, C, D)
    with pytest.raises(ValueError, match=r"A must have shape \(3, N\)"):
        selective_scan_sequential(u, delta, A.T, B, C, D)
    with pytest.raises(ValueError, match=r"C must have shape \(1, 5, 2\)"):
        selective_scan_chunked(u, delta, A, B, C[:, :, :1], D)
    with pytest.raises(ValueError, match=r"D must have shape \(3,\)"):
        selective_scan_sequential(u, delta, A, B, C, D[:2])
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        selective_scan_chunked(u, delta, A, B, C, D, chunk_size=0)
    block = MambaMixer(SelectiveSSMConfig(hidden_size=8, state_size=2))
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, 8\)"):
        block(torch.randn(1, 4, 6))
    with pytest.raises(ValueError, match="mode must be one of"):
        block(torch.randn(1, 4, 8), mode="fast")
    with pytest.raises(ValueError, match="state is only used with mode='recurrent'"):
        block(torch.randn(1, 4, 8), state=block(torch.randn(1, 4, 8), mode="recurrent")[1])
    with pytest.raises(ValueError, match="SelectiveSSMConfig.state_size must be a positive int, got 0"):
        MambaMixer(SelectiveSSMConfig(hidden_size=8, state_size=0))
    with pytest.raises(ValueError, match="SelectiveSSMConfig.chunk_size must be a positive int, got 0"):
        SelectiveSSMConfig(chunk_size=0)
