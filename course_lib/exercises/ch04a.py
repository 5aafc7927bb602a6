"""Exercise checks of chapter 04a (MLA): the KV cache of DeepSeek-V3, W^UV folded into W^O, MLA as GQA."""

from __future__ import annotations

import torch

from course_lib.exercises import exercise
from course_lib.models.deepseek.mla import MLAConfig, MultiHeadLatentAttention, kv_cache_elements_per_token

V3_LAYERS, V3_D_C, V3_D_R = 61, 512, 64


@exercise("04a.1", answer="v3_cache_bytes", wrong=(2 * 61 * 512, 61 * (512 + 64), 2 * 2 * 61 * 128 * 128))
def check_v3_cache_bytes(value) -> str:
    """Check exercise 04a.1: the learner's DeepSeek-V3 MLA cache bytes per token against ``kv_cache_elements_per_token``."""
    expected = 2 * kv_cache_elements_per_token("MLA", V3_LAYERS, 128, 128, kv_lora_rank=V3_D_C,
                                               qk_rope_head_dim=V3_D_R)
    assert isinstance(value, (int, float)), f"答案应是一个数（字节数），得到 {type(value).__name__}"
    assert value != V3_LAYERS * (V3_D_C + V3_D_R), "这是元素个数；bf16 每个元素 2 字节"
    assert value != 2 * V3_LAYERS * V3_D_C, "漏了解耦 RoPE 键 k^R 的 64 维：它也要缓存"
    assert value == expected, f"(d_c + d_R) × 层数 × 2 字节 = {expected:,d}，你的答案是 {value:,}"
    return f"DeepSeek-V3 每个 token 缓存 {expected:,d} 字节（{expected / 1024:.1f} KB），128k 上下文约 " \
           f"{expected * 128 * 1024 / 2**30:.2f} GiB"


def _merged_wo_uk(attn):  # wrong: takes the W^UK rows of kv_b_proj instead of W^UV
    c = attn.config
    w_o = attn.o_proj.weight.view(c.hidden_size, c.num_heads, c.v_head_dim)
    w_uk = attn.kv_b_proj.weight.view(c.num_heads, -1, c.kv_lora_rank)[:, : c.qk_nope_head_dim]
    return torch.einsum("dhv,hvc->dhc", w_o, w_uk).reshape(c.hidden_size, -1)


def _merged_wo_c_major(attn):  # wrong: flattens (d_c, H) instead of (H, d_c)
    c = attn.config
    w_o = attn.o_proj.weight.view(c.hidden_size, c.num_heads, c.v_head_dim)
    w_uv = attn.kv_b_proj.weight.view(c.num_heads, -1, c.kv_lora_rank)[:, c.qk_nope_head_dim:]
    return torch.einsum("dhv,hvc->dch", w_o, w_uv).reshape(c.hidden_size, -1)


@exercise("04a.2", answer="merged_wo", wrong=(_merged_wo_uk, _merged_wo_c_major), writes_code=True)
def check_merged_wo(fn) -> str:
    """Check exercise 04a.2: the learner's absorbed W^O·W^UV (DeepSeek-V2 §2.1.2) against MLA's naive output."""
    torch.manual_seed(0)
    c = MLAConfig(hidden_size=32, num_heads=4, kv_lora_rank=12, qk_nope_head_dim=6, qk_rope_head_dim=4,
                  v_head_dim=6)
    attn = MultiHeadLatentAttention(c).eval()
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        reference, _ = attn(x, mode="naive")                                   # (B, T, d)
        _, weights = attn(x, mode="naive", output_attentions=True)              # (B, H, T, T)
        c_kv = attn.kv_a_proj_with_mqa(x)[..., : c.kv_lora_rank]                 # (B, T, d_c)
        o_latent = weights @ attn.kv_a_layernorm(c_kv)[:, None]                 # (B, H, T, d_c), as in section 3
        merged = fn(attn)
    assert isinstance(merged, torch.Tensor), f"merged_wo 应返回一个张量，得到 {type(merged).__name__}"
    want = (c.hidden_size, c.num_heads * c.kv_lora_rank)
    assert tuple(merged.shape) == want, f"形状应为 (d, H·d_c) = {want}，得到 {tuple(merged.shape)}"
    out = o_latent.transpose(1, 2).reshape(2, 5, -1) @ merged.T                  # (B, T, d)
    err = (out - reference).abs().max().item()
    assert err < 1e-4, (f"o_latent 经合并矩阵投影后与注意力层输出相差 {err:.2e}：检查是否用了 kv_b_proj 里 W^UV 那几行"
                        f"（每个头的后 d_v 行），以及展平顺序是否是 (H, d_c)")
    return f"W^O_i W^UV_i 合并成一个 (d, H·d_c) 矩阵，输出与注意力层一致（max |diff| {err:.1e}）"


@exercise("04a.3", answer="equivalent_groups",
          wrong=(lambda d_c, d_r, d_h: (d_c + d_r) / d_h, lambda d_c, d_r, d_h: d_c / (2 * d_h)))
def check_equivalent_groups(fn) -> str:
    """Check exercise 04a.3: the learner's MLA-equivalent GQA group count against ``kv_cache_elements_per_token``."""
    for d_c, d_r, d_h in ((512, 64, 128), (256, 32, 64), (1024, 64, 128), (96, 16, 32)):
        mla = kv_cache_elements_per_token("MLA", 1, 8, d_h, kv_lora_rank=d_c, qk_rope_head_dim=d_r)
        want = mla / kv_cache_elements_per_token("GQA", 1, 8, d_h, num_kv_groups=1)
        got = fn(d_c, d_r, d_h)
        assert abs(got - want) < 1e-9, (f"d_c={d_c}, d_R={d_r}, d_h={d_h}：MLA 每层缓存 {mla} 个数，GQA 每组 2·d_h = "
                                        f"{2 * d_h} 个，应是 {want:g} 组，你的答案 {got:g}")
    return "MLA 缓存 (d_c + d_R) 个数，等于 (d_c + d_R) / (2 d_h) 组的 GQA；DeepSeek-V2 是 2.25 组"
