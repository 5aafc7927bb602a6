"""Benchmarks: each times ours and its reference in the same process and reports a ratio (§7)."""

from bench.harness import BenchResult, benchmark, interleaved

__all__ = ["BenchResult", "benchmark", "interleaved"]
