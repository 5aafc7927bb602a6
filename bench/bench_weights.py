"""Loading SmolLM2's fp32 weights: the safetensors cache vs dequantizing the GGUF, and vs transformers."""

from __future__ import annotations

import tempfile

from bench.harness import BenchResult, benchmark, interleaved


@benchmark("weights: cached load vs GGUF dequantize")
def cached_vs_uncached() -> BenchResult:
    """Second load (safetensors cache) against the first (read GGUF + dequantize + un-permute)."""
    from course_lib import weights

    source = weights.smollm2_gguf_path()
    with tempfile.TemporaryDirectory() as tmp:
        import os

        old = os.environ.get("COURSE_CACHE")
        os.environ["COURSE_CACHE"] = tmp
        try:
            weights.smollm2_state_dict()  # writes the cache
            t = interleaved({"cached": weights.smollm2_state_dict,
                             "uncached": lambda: weights.dequantize_gguf(source)}, rounds=3, warmup=0)
            cached, uncached = t["cached"], t["uncached"]
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
    t = interleaved({"ours": lambda: weights.dequantize_gguf(source),
                     "reference": lambda: AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name,
                                                                               dtype=torch.float32)},
                    rounds=3, warmup=0)
    ours, reference = t["ours"], t["reference"]
    return BenchResult(ours=ours, reference=reference, unit="s", higher_is_better=False, target=None,
                       reference_name="transformers AutoModelForCausalLM.from_pretrained(gguf_file=...)",
                       notes="median of 3 alternating rounds, no warm-up (both take seconds); reference also builds the model")
