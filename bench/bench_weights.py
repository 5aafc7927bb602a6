"""Loading SmolLM2's fp32 weights: the safetensors cache vs dequantizing the GGUF, and vs transformers."""

from __future__ import annotations

import tempfile
import time

from bench.harness import BenchResult, benchmark, time_call


@benchmark("weights: cached load vs GGUF dequantize")
def cached_vs_uncached() -> BenchResult:
    """Second load (safetensors cache) against the first (read GGUF + dequantize + un-permute)."""
    from course_lib import weights

    source = weights.smollm2_gguf_path()
    uncached = time_call(lambda: weights.dequantize_gguf(source), repeat=2, warmup=0)
    with tempfile.TemporaryDirectory() as tmp:
        import os

        old = os.environ.get("COURSE_CACHE")
        os.environ["COURSE_CACHE"] = tmp
        try:
            weights.smollm2_state_dict()  # writes the cache
            cached = time_call(weights.smollm2_state_dict, repeat=5)
        finally:
            if old is None:
                os.environ.pop("COURSE_CACHE")
            else:
                os.environ["COURSE_CACHE"] = old
    return BenchResult(ours=cached, reference=uncached, unit="s", higher_is_better=False, target=None,
                       reference_name="dequantize the GGUF (first load)",
                       notes=f"cached load {cached:.3f} s (issue target: under 2 s)")


@benchmark("weights: our GGUF load vs transformers gguf_file=")
def ours_vs_transformers() -> BenchResult:
    """Our dequantize-to-state-dict against transformers building LlamaForCausalLM from the same GGUF."""
    import torch
    from transformers import AutoModelForCausalLM

    from course_lib import weights

    source = weights.smollm2_gguf_path()
    start = time.perf_counter()
    weights.dequantize_gguf(source)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=torch.float32)
    reference = time.perf_counter() - start
    return BenchResult(ours=ours, reference=reference, unit="s", higher_is_better=False, target=None,
                       reference_name="transformers AutoModelForCausalLM.from_pretrained(gguf_file=...)",
                       notes="one run each (both take seconds); reference also builds the model")
