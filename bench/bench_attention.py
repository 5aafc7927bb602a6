"""Blockwise (online-softmax) attention vs the naive form, and vs ``F.scaled_dot_product_attention``.

Shape ``(B=1, H=4, T, d=64)`` at T = 1k, 2k, 4k, fp32, CPU, no mask, no grad. Memory is the peak
of live tensor bytes seen by the dispatcher (:func:`course_lib.profiling.peak_memory`); the naive
form holds ~3 ``(T, T)`` matrices per head (scores, softmax, NaN-cleaned copy), the blockwise form
``(T, block)`` slices. Timings on a shared machine are inflated by contention.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

from bench.harness import BenchResult, benchmark, interleaved
from course_lib.attention import blockwise_attention, scaled_dot_product_attention
from course_lib.profiling import peak_memory

HEADS, HEAD_DIM, BLOCK = 4, 64, 256


def _inputs(t: int):
    gen = torch.Generator().manual_seed(0)
    return tuple(torch.randn(1, HEADS, t, HEAD_DIM, generator=gen) for _ in range(3))


def _naive(q, k, v):
    return scaled_dot_product_attention(q, k, v)[0]


def _blockwise(q, k, v):
    return blockwise_attention(q, k, v, block_size=BLOCK)


@cache
@torch.no_grad()
def _measure(t: int) -> dict[str, float]:
    """Times and peak bytes of the three forms at length ``t`` (once per ``t``; the benchmarks share it)."""
    q, k, v = _inputs(t)
    forms = {"naive": _naive, "blockwise": _blockwise, "sdpa": F.scaled_dot_product_attention}
    times = interleaved({name: (lambda fn=fn: fn(q, k, v)) for name, fn in forms.items()}, rounds=3)
    out = {}
    for name, fn in forms.items():
        out[f"{name}_s"] = times[name]
        out[f"{name}_bytes"] = float(peak_memory(lambda fn=fn: fn(q, k, v))[1])
    torch.testing.assert_close(_blockwise(q, k, v), F.scaled_dot_product_attention(q, k, v))
    return out


def _register(t: int) -> None:
    label = f"T{t // 1024}k"

    @benchmark(f"attention_blockwise_vs_naive_time_{label}", f"blockwise vs naive attention time, T={t}")
    def time_vs_naive() -> BenchResult:
        m = _measure(t)
        return BenchResult(m["blockwise_s"], m["naive_s"], "s", higher_is_better=False, reference_name="naive",
                           notes=f"(1, {HEADS}, {t}, {HEAD_DIM}) fp32, block {BLOCK}", extra=m)

    @benchmark(f"attention_blockwise_vs_naive_memory_{label}", f"blockwise vs naive attention peak memory, T={t}")
    def memory_vs_naive() -> BenchResult:
        m = _measure(t)
        return BenchResult(m["blockwise_bytes"] / 2**20, m["naive_bytes"] / 2**20, "MiB", higher_is_better=False,
                           reference_name="naive", notes="peak live tensor bytes", extra=m)

    @benchmark(f"attention_blockwise_vs_sdpa_time_{label}", f"blockwise vs F.scaled_dot_product_attention, T={t}")
    def time_vs_sdpa() -> BenchResult:
        m = _measure(t)
        return BenchResult(m["blockwise_s"], m["sdpa_s"], "s", higher_is_better=False,
                           reference_name="F.scaled_dot_product_attention",
                           notes="fused C++ flash kernel; its scratch memory is invisible to peak_memory", extra=m)


for _t in (1024, 2048, 4096):
    _register(_t)
