"""SmolLM2-135M on the CPU, fp32: our LLaMA against transformers' LlamaForCausalLM (same GGUF weights)."""

from __future__ import annotations

from functools import lru_cache

import torch

from bench.harness import BenchResult, benchmark, interleaved

PROMPT = "The Python programming language was designed to be easy to read. Its main features are"


@lru_cache(maxsize=1)
def _models():
    from transformers import AutoModelForCausalLM

    from course_lib import pretrained, weights

    path = weights.smollm2_gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                     dtype=torch.float32).eval()
    return pretrained.smollm2(), reference, pretrained.smollm2_tokenizer()


@benchmark("llama: decode tokens/s, batch 1, KV cache")
def decode() -> BenchResult:
    """Greedy decoding of 32 new tokens after a short prompt (our generate vs HF generate).

    Batch-1 decoding reads every weight once per token, so tokens/s is bounded by
    read bandwidth / weight bytes; the bandwidth is measured in the same rounds by summing a
    256 MiB buffer (a streaming read, like the matrix-vector products of a decode step).
    """
    from course_lib.generation import generate

    ours, reference, tok = _models()
    ids = torch.tensor([tok.encode(PROMPT)])
    n = 32
    hf = lambda: reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,  # noqa: E731
                                    min_new_tokens=n, do_sample=False)
    with torch.no_grad():
        assert generate(ours, ids, n).tolist() == hf().tolist()
    buffer = torch.ones(64 * 2**20)  # 256 MiB
    t = interleaved({"ours": lambda: generate(ours, ids, n), "reference": lambda: hf(), "read": buffer.sum}, rounds=3)
    bandwidth = buffer.nbytes / t["read"]  # bytes/s
    weight_bytes = sum(p.nbytes for p in ours.parameters())  # the tied embedding is read once, by the head
    limit = bandwidth / weight_bytes  # tokens/s if a token cost nothing but reading the weights
    return BenchResult(ours=n / t["ours"], reference=n / t["reference"], unit="tokens/s", higher_is_better=True,
                       target=1.3, reference_name="transformers generate (sdpa, DynamicCache)",
                       notes=f"prompt {ids.shape[1]} tokens, {n} new tokens, identical outputs; bandwidth limit "
                             f"{limit:.1f} tokens/s ({weight_bytes / 1e6:.0f} MB of weights per token at "
                             f"{bandwidth / 1e9:.1f} GB/s read): ours {n / t['ours'] / limit:.0%}, "
                             f"transformers {n / t['reference'] / limit:.0%} of it",
                       extra={"read_GB_per_s": bandwidth / 1e9, "weight_MB_per_token": weight_bytes / 1e6,
                              "limit_tokens_per_s": limit, "ours_fraction_of_limit": n / t["ours"] / limit,
                              "reference_fraction_of_limit": n / t["reference"] / limit})


@benchmark("llama: prefill 512 tokens")
def prefill() -> BenchResult:
    """One forward pass over 512 tokens, no cache."""
    from course_lib.data import python_docs_text

    ours, reference, tok = _models()
    ids = torch.tensor([tok.encode(python_docs_text(4000))[:512]])
    assert ids.shape[1] == 512
    with torch.no_grad():
        t = interleaved({"ours": lambda: ours(ids), "reference": lambda: reference(ids, use_cache=False)}, rounds=3)
    return BenchResult(ours=t["ours"], reference=t["reference"], unit="s", higher_is_better=False, target=1.0,
                       reference_name="transformers LlamaForCausalLM forward (sdpa)")


@benchmark("llama: KV cache vs recompute, 256 new tokens")
def cache_vs_recompute() -> BenchResult:
    """Our generate with the KV cache against recomputing the whole sequence every step."""
    from course_lib.generation import generate

    ours, _, tok = _models()
    ids = torch.tensor([tok.encode(PROMPT)])
    out = {}
    t = interleaved({"cached": lambda: out.update(cached=generate(ours, ids, 256, use_cache=True)),
                     "recompute": lambda: out.update(recompute=generate(ours, ids, 256, use_cache=False))},
                    rounds=1, warmup=0)
    assert out["cached"].tolist() == out["recompute"].tolist()
    with_cache, without = t["cached"], t["recompute"]
    return BenchResult(ours=with_cache, reference=without, unit="s", higher_is_better=False, target=5.0,
                       reference_name="our model without a cache (full recomputation per token)",
                       notes="one round each (the recompute takes minutes), identical tokens")
