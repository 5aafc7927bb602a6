"""Recurrent forms of chapter 02b against their references (reported; §7 sets no target for them).

- ``lstm_forward``: our from-scratch LSTM (a Python loop over time) vs ``torch.nn.LSTM`` (fused C++),
  forward, (B=16, T=128, 256 → 256), fp32, no grad. Ours is expected to be slower: it exists to be read.
- ``selective_scan_chunked``: our chunked selective scan (chunk 16) vs the torch fallback of the
  ``selective_scan_fn`` kernel in transformers (a token-by-token loop), (B=1, T=1024, D=128, N=16).
  The chunked form does O(chunk) times more multiply-adds to gain parallelism; on a CPU the loop wins.
- ``decode_step_mamba_vs_attention_4k``: one decoding step of a Mamba block (fixed state) vs one
  attention step over a 4096-token KV cache, width 64: the reason these models exist.

Timings on a shared machine are inflated by contention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.models.mamba import modeling_mamba

from bench.harness import BenchResult, benchmark, interleaved
from course_lib.attention import scaled_dot_product_attention
from course_lib.models.rnn import LSTM
from course_lib.models.ssm import MambaMixer, SelectiveSSMConfig, selective_scan_chunked


@benchmark("lstm_forward", "our LSTM vs torch.nn.LSTM forward time (B=16, T=128, H=256)")
@torch.no_grad()
def lstm_forward() -> BenchResult:
    ref = torch.nn.LSTM(256, 256, batch_first=True)
    ours = LSTM(256, 256)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(16, 128, 256)
    torch.testing.assert_close(ours(x)[0], ref(x)[0])
    t = interleaved({"ours": lambda: ours(x), "reference": lambda: ref(x)}, rounds=3)
    return BenchResult(t["ours"], t["reference"], "s",
                       higher_is_better=False, reference_name="torch.nn.LSTM", notes="fp32, no grad")


@benchmark("selective_scan_chunked", "chunked selective scan vs HF's token-by-token fallback scan (T=1024)")
@torch.no_grad()
def selective_scan() -> BenchResult:
    g = torch.Generator().manual_seed(0)
    b, t, d, n = 1, 1024, 128, 16
    u, delta = torch.randn(b, t, d, generator=g), F.softplus(torch.randn(b, t, d, generator=g))
    A, D = -torch.exp(torch.randn(d, n, generator=g)), torch.randn(d, generator=g)
    B, C = torch.randn(b, t, n, generator=g), torch.randn(b, t, n, generator=g)
    ours = lambda: selective_scan_chunked(u, delta, A, B, C, D, chunk_size=16)[0]
    ref = lambda: modeling_mamba.mamba_selective_scan(u.transpose(1, 2), delta.transpose(1, 2), A, B.transpose(1, 2),
                                                      C.transpose(1, 2), D=D)
    torch.testing.assert_close(ours(), ref().transpose(1, 2), rtol=1e-4, atol=1e-4)  # T=1024 cumsums: looser
    t = interleaved({"ours": ours, "reference": ref}, rounds=3)
    return BenchResult(t["ours"], t["reference"], "s", higher_is_better=False,
                       reference_name="transformers mamba_selective_scan (torch fallback)",
                       notes=f"(B, T, D, N) = ({b}, {t}, {d}, {n}), chunk 16")


@benchmark("decode_step_mamba_vs_attention_4k", "one Mamba decoding step vs one attention step over a 4k KV cache")
@torch.no_grad()
def decode_step() -> BenchResult:
    width, heads, cached = 64, 4, 4096
    mamba = MambaMixer(SelectiveSSMConfig(hidden_size=width, state_size=16))
    x = torch.randn(1, 1, width)
    _, state = mamba(x, mode="recurrent")
    proj = torch.nn.Linear(width, 3 * width)
    kv = [torch.randn(1, heads, cached, width // heads) for _ in range(2)]

    def attention_step():
        q, k, v = proj(x).view(1, 1, heads, -1).transpose(1, 2).chunk(3, dim=-1)  # (1, H, 1, d/H) each
        return scaled_dot_product_attention(q, torch.cat([kv[0], k], 2), torch.cat([kv[1], v], 2))[0]

    t = interleaved({"ours": lambda: mamba(x, mode="recurrent", state=state), "reference": attention_step}, rounds=20)
    return BenchResult(t["ours"], t["reference"], "s", higher_is_better=False,
                       reference_name="attention + 4k KV cache", notes="width 64, batch 1; state: 2,432 vs 524,288 floats")
