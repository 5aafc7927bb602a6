"""MLA: weight-absorbed path = naive path, KV-cache decoding = full forward, cache sizes = DeepSeek-V2 Table 1.

Tolerance fp32 atol = rtol = 1e-5: the absorbed path multiplies by W^UK and W^UV in a different
order ((qᵀW^UK)c instead of qᵀ(W^UK c)), which changes rounding by ~1e-7 relative; a wrong
split, scale or RoPE pairing changes outputs by >1e-2.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.models.deepseek.mla import (
    MLACache,
    MLAConfig,
    MultiHeadLatentAttention,
    YarnConfig,
    kv_cache_elements_per_token,
    yarn_get_mscale,
)

TOL = dict(atol=1e-5, rtol=1e-5)


pytestmark = pytest.mark.usefixtures("one_thread")


def make(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(hidden_size=32, num_heads=4, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6)
    return MultiHeadLatentAttention(MLAConfig(**{**cfg, **kw})).eval()


@settings(max_examples=25, deadline=None)
@given(heads=st.integers(1, 4), d_c=st.integers(1, 24), d_nope=st.integers(1, 12), d_rope=st.sampled_from([2, 4, 8]),
       d_v=st.integers(1, 12), q_lora=st.one_of(st.none(), st.integers(1, 16)), t=st.integers(1, 9),
       seed=st.integers(0, 2**16))
def test_absorbed_equals_naive(heads, d_c, d_nope, d_rope, d_v, q_lora, t, seed):
    attn = make(seed, num_heads=heads, kv_lora_rank=d_c, qk_nope_head_dim=d_nope, qk_rope_head_dim=d_rope,
                v_head_dim=d_v, q_lora_rank=q_lora)
    x = torch.randn(2, t, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        naive, w_naive = attn(x, mode="naive", output_attentions=True)
        absorbed, w_abs = attn(x, mode="absorbed", output_attentions=True)
    torch.testing.assert_close(absorbed, naive, **TOL)
    torch.testing.assert_close(w_abs, w_naive, **TOL)


@settings(max_examples=10, deadline=None)
@given(prefill=st.integers(1, 6), steps=st.integers(1, 6), q_lora=st.one_of(st.none(), st.integers(1, 16)),
       seed=st.integers(0, 2**16))
def test_cached_decoding_matches_full_forward(prefill, steps, q_lora, seed):
    attn = make(seed, q_lora_rank=q_lora)
    x = torch.randn(1, prefill + steps, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        full, _ = attn(x)
        for mode in ("naive", "absorbed"):
            cache = MLACache()
            outs = [attn(x[:, :prefill], cache, mode)[0]]
            outs += [attn(x[:, t : t + 1], cache, mode)[0] for t in range(prefill, prefill + steps)]
            torch.testing.assert_close(torch.cat(outs, dim=1), full, **TOL)
            assert cache.length == prefill + steps


def test_cache_holds_what_the_paper_says():
    attn = make()
    c = attn.config
    naive, absorbed = MLACache(), MLACache()
    x = torch.randn(1, 5, 32)
    with torch.no_grad():
        attn(x, naive, "naive")
        attn(x, absorbed, "absorbed")
    assert naive.elements_per_token() == c.num_heads * (c.qk_head_dim + c.v_head_dim)
    assert absorbed.elements_per_token() == c.kv_lora_rank + c.qk_rope_head_dim
    assert absorbed.elements_per_token() == kv_cache_elements_per_token("MLA", 1, c.num_heads, 8, kv_lora_rank=16,
                                                                        qk_rope_head_dim=4)


def test_cache_grows_past_its_capacity():
    cache = MLACache()
    chunks = [torch.randn(2, 3, t, 4) for t in (10, 1, 7, 20)]
    (got,) = [cache.update(ch) for ch in chunks][-1]
    torch.testing.assert_close(got, torch.cat(chunks, dim=-2), atol=0, rtol=0)


def test_kv_cache_table_1():
    """DeepSeek-V2 Table 1, with n_h heads of d_h, l layers, n_g groups; MLA with d_c = 4 d_h, d_h^R = d_h / 2."""
    n_h, d_h, n_g, l = 128, 128, 8, 60
    assert kv_cache_elements_per_token("MHA", l, n_h, d_h) == 2 * n_h * d_h * l
    assert kv_cache_elements_per_token("GQA", l, n_h, d_h, num_kv_groups=n_g) == 2 * n_g * d_h * l
    assert kv_cache_elements_per_token("MQA", l, n_h, d_h) == 2 * d_h * l
    mla = kv_cache_elements_per_token("MLA", l, n_h, d_h, kv_lora_rank=4 * d_h, qk_rope_head_dim=d_h // 2)
    assert mla == 4.5 * d_h * l == 576 * 60
    # "equal to GQA with only 2.25 groups"
    assert mla == kv_cache_elements_per_token("MQA", l, n_h, d_h) * 2.25


def test_yarn_softmax_scale():
    yarn = YarnConfig(factor=40.0, original_max_position_embeddings=4096, mscale=1.0, mscale_all_dim=1.0)
    cfg = MLAConfig(64, 2, 16, 128, 64, 128, yarn=yarn)
    m = 0.1 * torch.log(torch.tensor(40.0)).item() + 1.0
    assert cfg.softmax_scale == pytest.approx(192 ** -0.5 * m * m)
    assert yarn_get_mscale(1.0) == 1.0


def test_bad_input_raises():
    with pytest.raises(ValueError, match="kv_lora_rank must be a positive int"):
        MLAConfig(32, 4, 0, 8, 4, 8)
    with pytest.raises(ValueError, match="kv_lora_rank must be a positive int"):
        MLAConfig(32, 4, -3, 8, 4, 8)
    with pytest.raises(ValueError, match="q_lora_rank must be a positive int"):
        MLAConfig(32, 4, 8, 8, 4, 8, q_lora_rank=0)
    with pytest.raises(ValueError, match="qk_rope_head_dim must be even"):
        MLAConfig(32, 4, 8, 8, 3, 8)
    with pytest.raises(TypeError, match="config must be an MLAConfig"):
        MultiHeadLatentAttention({"hidden_size": 32})
    attn = make()
    with pytest.raises(ValueError, match="x must have shape \\(B, T, 32\\)"):
        attn(torch.randn(2, 5, 31))
    with pytest.raises(ValueError, match="mode must be one of"):
        attn(torch.randn(1, 2, 32), mode="fast")
    with pytest.raises(TypeError, match="cache must be an MLACache"):
        attn(torch.randn(1, 2, 32), cache={})
    cache = MLACache()
    with torch.no_grad():
        attn(torch.randn(1, 2, 32), cache, "naive")
        with pytest.raises(ValueError, match="was it filled in the other mode"):
            attn(torch.randn(1, 1, 32), cache, "absorbed")
    with pytest.raises(ValueError, match="kind must be one of"):
        kv_cache_elements_per_token("MLB", 1, 1, 1)
    with pytest.raises(ValueError, match="GQA needs num_kv_groups dividing num_heads=8"):
        kv_cache_elements_per_token("GQA", 1, 8, 4, num_kv_groups=3)
    with pytest.raises(ValueError, match="MLA needs a positive int kv_lora_rank"):
        kv_cache_elements_per_token("MLA", 1, 8, 4, kv_lora_rank=0, qk_rope_head_dim=2)
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        kv_cache_elements_per_token("MHA", 0, 8, 4)
