"""DeepSeek benchmarks (COURSE_DESIGN §7): MLA absorbed vs naive decode at 4k cached tokens, cache sizes.

    python -m bench mla
"""

from __future__ import annotations

import torch

from bench.harness import BenchResult, benchmark, interleaved
from course_lib.models.deepseek.mla import (
    MLACache,
    MLAConfig,
    MultiHeadLatentAttention,
    kv_cache_elements_per_token,
)

# one attention layer of DeepSeek-V2-Lite: d = 2048, 16 heads, d_c = 512, d_nope = 128, d_R = 64, d_v = 128
V2_LITE = MLAConfig(hidden_size=2048, num_heads=16, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
                    v_head_dim=128)
CACHED = 4096


def _filled_caches(attn: MultiHeadLatentAttention) -> dict[str, MLACache]:
    """Both caches holding the same 4096 random tokens: the latent [c^KV; k^R] and its per-head expansion."""
    g = torch.Generator().manual_seed(0)
    c = attn.config
    c_kv = attn.kv_a_layernorm(torch.randn(1, CACHED, c.kv_lora_rank, generator=g))  # (1, T, d_c)
    k_pe = torch.randn(1, 1, CACHED, c.qk_rope_head_dim, generator=g)  # (1, 1, T, d_R)
    caches = {mode: MLACache() for mode in ("naive", "absorbed")}
    caches["naive"].update(*attn.expand_latent(c_kv, k_pe))  # (1, H, T, d_nope + d_R), (1, H, T, d_v)
    caches["absorbed"].update(torch.cat([c_kv, k_pe[:, 0]], dim=-1))  # (1, T, d_c + d_R)
    return caches


@benchmark("mla_absorbed_vs_naive_decode_4k", "MLA decode step, batch 1, 4096 cached tokens: absorbed vs naive")
def absorbed_vs_naive_decode() -> BenchResult:
    torch.manual_seed(0)
    attn = MultiHeadLatentAttention(V2_LITE).eval()
    x = torch.randn(1, 1, V2_LITE.hidden_size)
    with torch.no_grad():
        caches = _filled_caches(attn)
        times = interleaved({mode: (lambda m=mode: attn(x, caches[m], m)) for mode in caches}, rounds=30, warmup=3)
    with torch.no_grad():
        # the two paths must agree on the step they were timed on
        out_naive, _ = attn(x, caches["naive"], "naive")
        out_absorbed, _ = attn(x, caches["absorbed"], "absorbed")
    err = (out_naive - out_absorbed).abs().max().item()
    per_token = {mode: cache.elements_per_token() for mode, cache in caches.items()}
    return BenchResult(
        ours=times["absorbed"] * 1e3, reference=times["naive"] * 1e3, unit="ms/step", higher_is_better=False,
        target=1.5, reference_name="naive MLA (cache per-head K and V)",
        notes=f"one DeepSeek-V2-Lite attention layer, fp32 CPU; cache elements/token naive {per_token['naive']} vs "
              f"absorbed {per_token['absorbed']}; max |naive - absorbed| = {err:.1e}",
        extra={"cache_elements_per_token": per_token, "max_abs_diff": err})


@benchmark("mla_kv_cache_bytes_per_token", "KV cache bytes per token, DeepSeek-V2 shapes (bf16): MLA vs MHA")
def kv_cache_bytes() -> BenchResult:
    """DeepSeek-V2: 60 layers, 128 heads of 128, d_c = 512, d_R = 64. GQA with 8 groups for reference."""
    layers, heads, head_dim = 60, 128, 128
    table = {
        "MHA": kv_cache_elements_per_token("MHA", layers, heads, head_dim),
        "GQA (8 groups)": kv_cache_elements_per_token("GQA", layers, heads, head_dim, num_kv_groups=8),
        "MQA": kv_cache_elements_per_token("MQA", layers, heads, head_dim),
        "MLA": kv_cache_elements_per_token("MLA", layers, heads, head_dim, kv_lora_rank=512, qk_rope_head_dim=64),
    }
    bytes_bf16 = {k: 2 * v for k, v in table.items()}
    return BenchResult(
        ours=bytes_bf16["MLA"], reference=bytes_bf16["MHA"], unit="bytes/token", higher_is_better=False,
        target=None, reference_name="MHA of the same shape",
        notes="V2 Table 1: MLA (d_c + d_R)·l = 4.5·d_h·l; " + ", ".join(f"{k} {v}" for k, v in bytes_bf16.items()),
        extra={"elements_per_token": table, "bytes_per_token_bf16": bytes_bf16})
