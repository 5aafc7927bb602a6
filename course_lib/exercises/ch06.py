"""Checks for chapter 06 (prompt tuning, P-Tuning, prefix tuning) exercises."""

from __future__ import annotations

import torch

from course_lib.exercises import exercise

PREFIX_PARAMS_SMOLLM2 = 10 * 30 * 2 * 3 * 64  # n · layers · (key + value) · kv_heads · head_dim


def _tiny_llama():
    """A 3-layer random LLaMA with GQA (4 query heads, 2 KV heads), small enough for a check."""
    from course_lib.models.llama import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(6)
    config = LlamaConfig(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, rope_theta=100.0)
    return LlamaForCausalLM(config).eval()


def _text_cache(model, ids):
    cache = model.new_cache(ids.shape[0], ids.shape[1])
    with torch.no_grad():
        model(ids, cache=cache)
    return cache  # keys, values: (L, B, H_kv, n, d)


def _prefix_values_outer(model, ids):
    cache = _text_cache(model, ids)
    kv = torch.stack([cache.keys, cache.values])               # (2, L, B, H_kv, n, d): key/value outermost
    B, n = ids.shape
    return kv.permute(2, 4, 0, 1, 3, 5).reshape(B, n, -1)


def _prefix_heads_not_moved(model, ids):
    cache = _text_cache(model, ids)
    kv = torch.stack([cache.keys, cache.values], dim=1)        # (L, 2, B, H_kv, n, d)
    B, n = ids.shape
    return kv.permute(2, 0, 1, 3, 4, 5).reshape(B, n, -1)      # n left behind the heads


@exercise("06.1", answer="prefix_from_text", wrong=(_prefix_values_outer, _prefix_heads_not_moved), writes_code=True)
def check_prefix_from_text(fn) -> str:
    """Check exercise 06.1: a prefix initialised from real words' activations (Li & Liang 2021 §7.2).

    ``forward_with_prefix(model, fn(model, ids), x)`` must give the logits of the real text ``[ids; x]``
    at x's positions.
    """
    from course_lib.peft.prompt_tuning import forward_with_prefix

    model = _tiny_llama()
    g = torch.Generator().manual_seed(16)
    ids, x = torch.randint(0, 61, (2, 4), generator=g), torch.randint(0, 61, (2, 5), generator=g)
    c = model.config
    past = fn(model, ids)
    expected_shape = (2, 4, c.num_hidden_layers * 2 * c.num_key_value_heads * c.head_dim)
    assert isinstance(past, torch.Tensor) and tuple(past.shape) == expected_shape, (
        f"past 的形状应为 (B, n, L·2·H_kv·d) = {expected_shape}，得到 {tuple(getattr(past, 'shape', ()))}")
    with torch.no_grad():
        ours = forward_with_prefix(model, past, x).logits                  # (B, T, V)
        text = model(torch.cat([ids, x], dim=1)).logits[:, ids.shape[1]:]  # (B, T, V)
    err = (ours - text).abs().max().item()
    assert err < 1e-4, (f"用你的前缀 (prefix) 得到的 logits 与真实文本 [ids; x] 最多相差 {err:.2e}："
                        "检查最后一维的顺序（层、键/值、头、维度）以及 n 放在哪一维")
    return f"由 4 个真实词元得到的前缀 ≡ 文本本身（max |difference| {err:.1e}）"


def _block_prompts_forward_hook(model, prompts, ids, layer):
    n = prompts.shape[1]
    hook = model.model.layers[layer].register_forward_hook(
        lambda _m, _args, out: (torch.cat([prompts, out[0][:, n:]], dim=1),) + tuple(out[1:]))  # after the block
    try:
        return model(torch.cat([torch.zeros_like(ids[:, :n]), ids], dim=1)).logits
    finally:
        hook.remove()


def _block_prompts_appended(model, prompts, ids, layer):
    n = prompts.shape[1]
    hook = model.model.layers[layer].register_forward_pre_hook(
        lambda _m, args: (torch.cat([args[0][:, :-n], prompts], dim=1),) + args[1:])  # rows at the end
    try:
        return model(torch.cat([ids, torch.zeros_like(ids[:, :n])], dim=1)).logits
    finally:
        hook.remove()


def _block_prompts_reference(model, prompts, ids, layer):
    hook = model.model.layers[layer].register_forward_pre_hook(
        lambda _m, args: (torch.cat([prompts, args[0][:, prompts.shape[1]:]], dim=1),) + args[1:])
    try:
        return model(torch.cat([torch.zeros_like(ids[:, :prompts.shape[1]]), ids], dim=1)).logits
    finally:
        hook.remove()


@exercise("06.2", answer="forward_with_layer_prompts",
          wrong=(_block_prompts_forward_hook, _block_prompts_appended), writes_code=True)
def check_layer_prompts(fn) -> str:
    """Check exercise 06.2: soft prompts spliced in at the input of decoder block ``layer``.

    ``layer = 0`` must match the library's prompt tuning (``forward_with_prompts``); deeper layers
    must match splicing the hidden states of the n placeholder positions before that block.
    """
    from course_lib.peft.prompt_tuning import forward_with_prompts

    model = _tiny_llama()
    g = torch.Generator().manual_seed(26)
    prompts, ids = torch.randn(2, 3, 32, generator=g), torch.randint(0, 61, (2, 5), generator=g)
    with torch.no_grad():
        plain = model(ids).logits
        for layer in (0, 2):
            out = fn(model, prompts, ids, layer)
            expected = (forward_with_prompts(model, prompts, ids).logits if layer == 0
                        else _block_prompts_reference(model, prompts, ids, layer))
            assert isinstance(out, torch.Tensor) and out.shape == expected.shape, (
                f"layer={layer}：logits 的形状应为 {tuple(expected.shape)} (B, n + T, V)，得到 "
                f"{tuple(getattr(out, 'shape', ()))}")
            err = (out - expected).abs().max().item()
            assert err < 1e-5, (f"layer={layer}：logits 与参考最多相差 {err:.2e}；参考是把软提示 (soft prompt) 换进"
                                f"进入第 {layer} 个块的隐藏状态的前 n 行")
        assert torch.equal(model(ids).logits, plain), "钩子 (hook) 还挂在模型上：前向之后要把它移除"
    return "软提示放在第 0 个块 ≡ 提示微调 (prompt tuning)；放在第 2 个块时，前两个块看到的仍是占位词元"


@exercise("06.3", answer="prefix_params", wrong=(10 * 30 * 2 * 576, 10 * 2 * 3 * 64, 10 * 30 * 576))
def check_prefix_params(value) -> str:
    """Check exercise 06.3: the learner's prefix-tuning trainable-parameter count against SmolLM2's."""
    assert isinstance(value, int), f"请给一个整数 (int)，得到 {type(value).__name__}"
    assert value == PREFIX_PARAMS_SMOLLM2, ("n 个虚拟位置在 30 层的每一层都各有一个键和一个值；"
                                            "GQA 下一个键是 3 个头 × 64 = 192 个数，不是 576")
    return f"{value:,} 个可训练参数 = SmolLM2-135M 的 {value / 134_515_008:.3%}"
