"""Exercise checks for chapter 03 (LLaMA): KV-cache bytes, min-p sampling, Llama-3 RoPE scaling."""

from __future__ import annotations

import math

import torch

from course_lib.exercises import exercise


def _kv_reference(layers, kv_heads, head_dim, seq_len, batch, bytes_per_value) -> int:
    from course_lib.models.llama import KVCache, LlamaConfig

    dtype = {4: torch.float32, 2: torch.bfloat16, 1: torch.int8}[bytes_per_value]
    config = LlamaConfig(num_hidden_layers=layers, num_attention_heads=kv_heads, num_key_value_heads=kv_heads,
                         head_dim=head_dim, max_position_embeddings=max(seq_len, 8192))
    return KVCache(config, batch_size=batch, max_len=seq_len, dtype=dtype).nbytes()


def _kv_keys_only(layers, kv_heads, head_dim, seq_len, batch, bytes_per_value):  # forgets V
    return layers * kv_heads * head_dim * seq_len * batch * bytes_per_value


def _kv_no_batch(layers, kv_heads, head_dim, seq_len, batch, bytes_per_value):  # forgets the batch
    return 2 * layers * kv_heads * head_dim * seq_len * bytes_per_value


@exercise("03.1", answer="kv_cache_bytes", wrong=(_kv_keys_only, _kv_no_batch))
def check_kv_cache_bytes(fn) -> str:
    """Check exercise 03.1: the learner's KV-cache size formula against what ``KVCache`` allocates."""
    cases = [(30, 1, 64, 4096, 4, 2), (30, 3, 64, 100, 1, 4), (2, 2, 8, 16, 3, 1)]
    for case in cases:
        got, want = fn(*case), _kv_reference(*case)
        assert got == want, (f"kv_cache_bytes{case} = {got:,}，KVCache 实际分配 {want:,} 字节 "
                             f"(参数顺序: layers, kv_heads, head_dim, seq_len, batch, bytes_per_value)")
    return f"MQA、bf16、batch 4、4096 个词元：{fn(*cases[0]) / 2**20:.0f} MiB，和 KVCache.nbytes() 相同"


def _min_p_on_logits(logits, min_p):  # thresholds the logits instead of the probabilities
    threshold = min_p * logits.max(-1, keepdim=True).values
    return logits.masked_fill(logits < threshold, float("-inf"))


def _min_p_absolute(logits, min_p):  # forgets to scale the threshold by the top probability
    return logits.masked_fill(logits.softmax(-1) < min_p, float("-inf"))


def _min_p_renormalised(logits, min_p):  # returns log-probabilities, not the kept logits
    probs = logits.softmax(-1)
    keep = probs >= min_p * probs.max(-1, keepdim=True).values
    return probs.masked_fill(~keep, 0).log()


@exercise("03.2", answer="min_p_filter", wrong=(_min_p_on_logits, _min_p_absolute, _min_p_renormalised),
          writes_code=True)
def check_min_p(fn) -> str:
    """Check exercise 03.2: the learner's min-p filter against transformers' ``MinPLogitsWarper``."""
    from transformers import MinPLogitsWarper

    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 100, generator=g) * 3
    z[1] = torch.linspace(-2, 8, 100)  # one row with a clear head
    kept = []
    for min_p in (0.05, 0.1, 0.5):
        got = fn(z.clone(), min_p)
        want = MinPLogitsWarper(min_p)(None, z.clone())
        assert isinstance(got, torch.Tensor) and got.shape == z.shape, f"应返回和 logits 同形状的张量 {tuple(z.shape)}"
        removed = torch.isinf(want)
        assert torch.equal(torch.isinf(got), removed), \
            (f"min_p={min_p}: 删掉的词元不对（你删了 {int(torch.isinf(got).sum())} 个，应删 {int(removed.sum())} 个；"
             f"阈值是 min_p × 每行最大的「概率」）")
        assert torch.equal(got[~removed], z[~removed]), "保留下来的 logits 应原样不变"
        kept.append(float((~removed).sum(-1).float().mean()))
    return (f"与 transformers 的 MinPLogitsWarper 相同；min_p = 0.05 / 0.1 / 0.5 平均保留 "
            f"{kept[0]:.1f} / {kept[1]:.1f} / {kept[2]:.1f} 个词元")


def _llama3_reference(inv_freq, factor, low_freq_factor, high_freq_factor, original_max_position):
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    dim = 2 * inv_freq.numel()
    base = float(1.0 / inv_freq[1]) ** (dim / 2)  # inv_freq[i] = base^(-2i/d)
    config = LlamaConfig(hidden_size=dim, num_attention_heads=1, head_dim=dim,
                         max_position_embeddings=int(original_max_position * factor), rope_parameters=dict(
        rope_type="llama3", rope_theta=base, factor=factor, low_freq_factor=low_freq_factor,
        high_freq_factor=high_freq_factor, original_max_position_embeddings=original_max_position))
    return ROPE_INIT_FUNCTIONS["llama3"](config)[0]


def _llama3_linear(inv_freq, factor, low_freq_factor, high_freq_factor, original_max_position):  # every channel / factor
    return inv_freq / factor


def _llama3_no_smoothing(inv_freq, factor, low_freq_factor, high_freq_factor, original_max_position):
    wavelen = 2 * math.pi / inv_freq  # hard switch at the low-frequency wavelength, no ramp in between
    return torch.where(wavelen > original_max_position / low_freq_factor, inv_freq / factor, inv_freq)


def _llama3_ramp_reversed(inv_freq, factor, low_freq_factor, high_freq_factor, original_max_position):
    wavelen = 2 * math.pi / inv_freq
    smooth = (original_max_position / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    mid = smooth * inv_freq / factor + (1 - smooth) * inv_freq  # ramp the wrong way round
    out = torch.where(wavelen > original_max_position / low_freq_factor, inv_freq / factor, inv_freq)
    middle = (wavelen >= original_max_position / high_freq_factor) & (wavelen <= original_max_position / low_freq_factor)
    return torch.where(middle, mid, out)


@exercise("03.3", answer="llama3_inv_freq", wrong=(_llama3_linear, _llama3_no_smoothing, _llama3_ramp_reversed),
          writes_code=True)
def check_llama3_inv_freq(fn) -> str:
    """Check exercise 03.3: the learner's Llama 3 RoPE frequency scaling against transformers' ``llama3`` rope init."""
    from course_lib.layers import rope_inv_freq

    cases = [(rope_inv_freq(128, 500000.0), 8.0, 1.0, 4.0, 8192),   # Llama 3.1
             (rope_inv_freq(64, 100000.0), 4.0, 1.0, 4.0, 2048),     # SmolLM2-sized heads
             (rope_inv_freq(64, 10000.0), 32.0, 1.0, 4.0, 8192)]     # Llama 3.2
    for inv_freq, *params in cases:
        got = fn(inv_freq.clone(), *params)
        want = _llama3_reference(inv_freq, *params)
        assert isinstance(got, torch.Tensor) and got.shape == want.shape, f"应返回形状 {tuple(want.shape)} 的张量"
        err = float(((got - want).abs() / want).max())
        assert err < 1e-5, (f"d={2 * inv_freq.numel()}, factor={params[0]}: 和 transformers 的 llama3 频率最大相对误差 "
                            f"{err:.3g}（高频不动、低频除以 factor、中间按 smooth 因子线性插值）")
    unchanged = int((got == cases[-1][0]).sum())
    return f"与 transformers ROPE_INIT_FUNCTIONS['llama3'] 相同（3 种配置）；最后一种里 {unchanged} 个高频通道保持不变"
