"""Exercise checks for chapter 00 (course map): parameter count, KV-cache bytes, a prefix-LM mask."""

from __future__ import annotations

import torch

from course_lib.exercises import exercise

_TINY = dict(vocab_size=101, hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=6,
             num_key_value_heads=2, head_dim=8)


def _real_count(config: dict) -> int:
    """Parameters of the course's LLaMA built from ``config`` (tied embeddings, like SmolLM2)."""
    from course_lib.models.llama import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig.from_hf({**config, "tie_word_embeddings": True}))
    return sum(p.numel() for p in model.parameters())


def _count_untied(c: dict) -> int:  # counts the output head as a second v × d matrix
    d, d_ff, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    d_kv = c["num_key_value_heads"] * c["head_dim"]
    return 2 * v * d + c["num_hidden_layers"] * (2 * d * d + 2 * d * d_kv + 3 * d * d_ff + 2 * d) + d


def _count_mha(c: dict) -> int:  # gives K and V as many heads as Q (ignores GQA)
    d, d_ff, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    return v * d + c["num_hidden_layers"] * (4 * d * d + 3 * d * d_ff + 2 * d) + d


def _count_no_norms(c: dict) -> int:  # forgets the RMSNorm gains
    d, d_ff, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    d_kv = c["num_key_value_heads"] * c["head_dim"]
    return v * d + c["num_hidden_layers"] * (2 * d * d + 2 * d * d_kv + 3 * d * d_ff)


@exercise("00.1", answer="smollm2_param_count", wrong=(_count_untied, _count_mha, _count_no_norms))
def check_param_count(fn) -> str:
    """Check exercise 00.1: the learner's parameter-count formula against SmolLM2's weights on disk and a built tiny LLaMA."""
    from course_lib import weights

    smol = weights.smollm2_config()
    on_disk = sum(t.numel() for t in weights.smollm2_state_dict().values())
    got = fn(dict(smol))
    assert got == on_disk, f"SmolLM2: 公式给出 {got:,}，真实权重有 {on_disk:,} 个参数（差 {got - on_disk:+,}）"
    tiny = _real_count(_TINY)
    got = fn(dict(_TINY))
    assert got == tiny, f"另一个小配置 {_TINY}: 公式给出 {got:,}，模型实际有 {tiny:,}（差 {got - tiny:+,}）"
    return f"SmolLM2 {on_disk:,} 个参数，另一个小配置 {tiny:,}，公式都对"


def _kv_bytes_reference(c: dict, kv_heads: int, bytes_per_value: int) -> int:
    from course_lib.models.llama import KVCache, LlamaConfig

    dtype = {4: torch.float32, 2: torch.bfloat16, 1: torch.int8}[bytes_per_value]
    config = LlamaConfig.from_hf({**c, "num_key_value_heads": kv_heads, "num_attention_heads": 9})
    return KVCache(config, batch_size=1, max_len=4, dtype=dtype).nbytes() // 4  # per token


def _kv_only_keys(c: dict, kv_heads: int, bytes_per_value: int = 4) -> int:  # forgets V
    return c["num_hidden_layers"] * kv_heads * c["head_dim"] * bytes_per_value


def _kv_query_heads(c: dict, kv_heads: int, bytes_per_value: int = 4) -> int:  # uses the query head count
    return 2 * c["num_hidden_layers"] * c["num_attention_heads"] * c["head_dim"] * bytes_per_value


def _kv_one_layer(c: dict, kv_heads: int, bytes_per_value: int = 4) -> int:  # forgets that every layer caches
    return 2 * kv_heads * c["head_dim"] * bytes_per_value


@exercise("00.2", answer="kv_cache_bytes_per_token", wrong=(_kv_only_keys, _kv_query_heads, _kv_one_layer))
def check_kv_cache_bytes(fn) -> str:
    """Check exercise 00.2: the learner's KV-cache bytes per token against what ``KVCache`` allocates."""
    from course_lib import weights

    smol = weights.smollm2_config()
    for kv_heads, nbytes in [(3, 4), (9, 4), (1, 2)]:
        want = _kv_bytes_reference(smol, kv_heads, nbytes)
        got = fn(dict(smol), kv_heads, nbytes)
        assert got == want, (f"{kv_heads} 个 KV 头、每个数 {nbytes} 字节：你的公式给出 {got:,} 字节/词元，"
                             f"KVCache 实际分配 {want:,}")
    gqa, mha = fn(dict(smol), 3), fn(dict(smol), 9)
    return f"GQA {gqa / 1024:.1f} KiB/词元，MHA {mha / 1024:.1f} KiB/词元，GQA 省下 {1 - gqa / mha:.0%}"


def _prefix_reference(t: int, prefix: int) -> torch.Tensor:
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    return (j <= i) | (j < prefix)


def _prefix_causal_only(t: int, prefix: int) -> torch.Tensor:  # forgets the bidirectional prefix
    return torch.ones(t, t, dtype=torch.bool).tril()


def _prefix_off_by_one(t: int, prefix: int) -> torch.Tensor:  # the prefix reaches one key too far
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    return (j <= i) | (j <= prefix)


def _prefix_both_ways(t: int, prefix: int) -> torch.Tensor:  # lets the prefix see the continuation
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    return (j <= i) | (j < prefix) | (i < prefix)


@exercise("00.3", answer="prefix_lm_mask", wrong=(_prefix_causal_only, _prefix_off_by_one, _prefix_both_ways),
          writes_code=True)
def check_prefix_lm_mask(fn) -> str:
    """Check exercise 00.3: the learner's prefix-LM mask (T5's prefix LM, Raffel et al. 2020) against the reference mask."""
    from course_lib.attention import causal_mask, scaled_dot_product_attention

    for t, prefix in [(6, 3), (5, 0), (4, 4), (7, 1)]:
        got = fn(t, prefix)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.bool and got.shape == (t, t), \
            f"prefix_lm_mask({t}, {prefix}) 应返回 ({t}, {t}) 的布尔张量（True = 允许看），得到 {got!r}"
        want = _prefix_reference(t, prefix)
        wrong = (got != want).nonzero().tolist()
        assert not wrong, (f"prefix_lm_mask({t}, {prefix}) 在 (查询, 键) = {wrong[:4]} 处不对：前缀内部双向可见，"
                           f"前缀之后按因果规则，前缀看不到后面的词")
    assert torch.equal(fn(5, 0), causal_mask(5)), "前缀长度为 0 时应退化为因果掩码"
    q = torch.randn(1, 1, 6, 4)
    _, w = scaled_dot_product_attention(q, q, q, mask=fn(6, 3))
    assert w[0, 0, 0, 2] > 0 and w[0, 0, 3, 4] == 0, "放进注意力后：位置 0 应能看到前缀里的位置 2、位置 3 看不到位置 4"
    return "前缀内部双向、之后因果；前缀长度 0 就是 decoder-only 的因果掩码"
