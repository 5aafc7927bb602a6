"""SmolLM2-135M on the CPU, fp32: our LLaMA against transformers' LlamaForCausalLM (same GGUF weights)."""

from __future__ import annotations

import statistics
import time
from functools import lru_cache

import torch

from bench.harness import BenchResult, benchmark

PROMPT = "The Python programming language was designed to be easy to read. Its main features are"


@lru_cache(maxsize=1)
def _models():
    from transformers import AutoModelForCausalLM

    from course_lib import weights
    from course_lib.models.llama import LlamaForCausalLM
    from course_lib.tokenizers.bpe import ByteLevelBPE

    path = weights.smollm2_gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                     dtype=torch.float32).eval()
    return LlamaForCausalLM.from_smollm2(), reference, ByteLevelBPE.from_smollm2()


def _interleaved(fns: dict, rounds: int) -> dict[str, float]:
    """Median seconds of each function, run in alternation so machine load hits all alike."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


@benchmark("llama: decode tokens/s, batch 1, KV cache")
def decode() -> BenchResult:
    """Greedy decoding of 64 new tokens after a short prompt (our generate vs HF generate)."""
    from course_lib.generation import generate

    ours, reference, tok = _models()
    ids = torch.tensor([tok.encode(PROMPT)])
    n = 32
    with torch.no_grad():
        ref_ids = reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                     min_new_tokens=n, do_sample=False)
    assert generate(ours, ids, n).tolist() == ref_ids.tolist()
    t = _interleaved({
        "ours": lambda: generate(ours, ids, n),
        "reference": lambda: reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                                min_new_tokens=n, do_sample=False),
    }, rounds=3)
    return BenchResult(ours=n / t["ours"], reference=n / t["reference"], unit="tokens/s", higher_is_better=True,
                       target=1.3, reference_name="transformers generate (sdpa, DynamicCache)",
                       notes=f"prompt {ids.shape[1]} tokens, {n} new tokens, identical outputs, "
                             f"{torch.get_num_threads()} threads")


@benchmark("llama: prefill 512 tokens")
def prefill() -> BenchResult:
    """One forward pass over 512 tokens, no cache."""
    from course_lib.data import python_docs_text

    ours, reference, tok = _models()
    ids = torch.tensor([tok.encode(python_docs_text(4000))[:512]])
    assert ids.shape[1] == 512
    with torch.no_grad():
        t = _interleaved({"ours": lambda: ours(ids), "reference": lambda: reference(ids, use_cache=False)}, rounds=3)
    return BenchResult(ours=t["ours"], reference=t["reference"], unit="s", higher_is_better=False, target=1.0,
                       reference_name="transformers LlamaForCausalLM forward (sdpa)")


@benchmark("llama: KV cache vs recompute, 256 new tokens")
def cache_vs_recompute() -> BenchResult:
    """Our generate with the KV cache against recomputing the whole sequence every step."""
    from course_lib.generation import generate

    ours, _, tok = _models()
    ids = torch.tensor([tok.encode(PROMPT)])
    start = time.perf_counter()
    cached = generate(ours, ids, 256, use_cache=True)
    with_cache = time.perf_counter() - start
    start = time.perf_counter()
    recomputed = generate(ours, ids, 256, use_cache=False)
    without = time.perf_counter() - start
    assert cached.tolist() == recomputed.tolist()
    return BenchResult(ours=with_cache, reference=without, unit="s", higher_is_better=False, target=5.0,
                       reference_name="our model without a cache (full recomputation per token)",
                       notes="one run each, identical tokens")
