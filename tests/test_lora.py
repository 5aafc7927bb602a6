"""LoRA / rsLoRA / DoRA equal to HF peft 0.21.2 on SmolLM2's real weights, merge/unmerge, adapters, bad input.

Reference tests copy peft's A, B (and DoRA's magnitude) into ours, both wrapping the same base
weights, and compare logits and merged weights in fp32. Most run on the first 4 real layers of
SmolLM2 (full vocabulary) to stay fast; one runs the whole 30-layer model. A random tiny GPT-2
checks transformers' Conv1D layers against peft's ``fan_in_fan_out=True``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.testing import assert_close

from course_lib import weights
from course_lib.models.llama import LlamaConfig, LlamaForCausalLM
from course_lib.peft import lora
from course_lib.peft.adapter import count_parameters, load_adapter, save_adapter
from course_lib.peft.lora import LoRALinear, inject_lora
from course_lib.peft.reference import hf_llama

TOL = dict(atol=1e-4, rtol=1e-4)  # same as our LLaMA vs HF's: different attention kernels, fp32


def real_smollm2(state: dict, layers: int = 4) -> LlamaForCausalLM:
    """SmolLM2 cut to its first ``layers`` real decoder layers (eval mode)."""
    config = dataclasses.replace(LlamaConfig.from_hf(weights.smollm2_config()), num_hidden_layers=layers)
    model = LlamaForCausalLM(config)
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("model.layers.")
                           or int(k.split(".")[2]) < layers})
    return model.eval()


def peft_pair(state, targets, r=8, alpha=16, rslora=False, dora=False, layers=4):
    """(ours, peft's) with the same base weights and the same random A, B (B ≠ 0) and magnitude."""
    from peft import LoraConfig, get_peft_model

    ours = real_smollm2(state, layers)
    ref = get_peft_model(hf_llama(ours), LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                                                    use_rslora=rslora, use_dora=dora)).eval()
    inject_lora(ours, targets, r=r, alpha=alpha, rslora=rslora, dora=dora)
    ref_state = ref.state_dict()
    with torch.no_grad():
        for name, layer in lora.lora_layers(ours).items():
            prefix = f"base_model.model.{name}"
            ref_state[f"{prefix}.lora_B.default.weight"].normal_(std=0.02)
            layer.lora_A.weight.copy_(ref_state[f"{prefix}.lora_A.default.weight"])
            layer.lora_B.weight.copy_(ref_state[f"{prefix}.lora_B.default.weight"])
            if dora:  # both start at ‖W₀‖; move it so a wrong magnitude path would show
                ref_state[f"{prefix}.lora_magnitude_vector.default.weight"].mul_(1.1)
                layer.lora_magnitude_vector.copy_(ref_state[f"{prefix}.lora_magnitude_vector.default.weight"])
    return ours, ref


@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], "all-linear"])
@pytest.mark.parametrize("rslora,dora", [(False, False), (True, False), (False, True)])
def test_outputs_and_merged_weights_equal_peft(smollm2_state_dict, targets, rslora, dora):
    ours, ref = peft_pair(smollm2_state_dict, targets, rslora=rslora, dora=dora)
    wrapped = set(lora.lora_layers(ours))
    assert wrapped == {n.removeprefix("base_model.model.") for n, m in ref.named_modules()
                       if type(m).__name__ == "Linear" and hasattr(m, "lora_A")}
    assert len(wrapped) == (8 if targets != "all-linear" else 28)
    ids = torch.randint(0, 49152, (2, 12))
    with torch.no_grad():
        base = hf_llama(ours)(ids).logits
        ours_logits, ref_logits = ours(ids).logits, ref(ids).logits
    assert (ours_logits - base).abs().max() > 1e-2  # the adapter changes the output
    assert_close(ours_logits, ref_logits, **TOL)
    lora.merge(ours)
    merged_ref = ref.merge_and_unload()
    ref_weights = merged_ref.state_dict()
    for name, layer in lora.lora_layers(ours).items():
        assert_close(layer.base_layer.weight, ref_weights[f"{name}.weight"], atol=1e-6, rtol=1e-5)  # one add in fp32
    with torch.no_grad():
        assert_close(ours(ids).logits, ours_logits, **TOL)  # merged = unmerged


def test_whole_smollm2_equals_peft(smollm2_state_dict):
    ours, ref = peft_pair(smollm2_state_dict, ["q_proj", "v_proj"], r=4, alpha=8, layers=30)
    ids = torch.randint(0, 49152, (1, 10))
    with torch.no_grad():
        assert_close(ours(ids).logits, ref(ids).logits, **TOL)


def tiny_gpt2():
    """A random 2-layer transformers GPT-2: its c_attn / c_proj / c_fc are ``Conv1D`` (weight stored in × out)."""
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=50, bos_token_id=0, eos_token_id=0, n_positions=32, n_embd=32,
                                     n_layer=2, n_head=4, attn_implementation="eager")
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("targets", [["c_attn", "c_fc"], "all-linear"])
@pytest.mark.parametrize("dora", [False, True])
def test_gpt2_conv1d_equals_peft_fan_in_fan_out(targets, dora):
    import copy

    from peft import LoraConfig, get_peft_model

    ours = tiny_gpt2()
    base = copy.deepcopy(ours)
    ref = get_peft_model(copy.deepcopy(ours), LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0,
                                                         fan_in_fan_out=True, use_dora=dora)).eval()
    names = inject_lora(ours, targets, r=4, alpha=8, dora=dora)
    assert set(names) == {n.removeprefix("base_model.model.") for n, m in ref.named_modules() if hasattr(m, "lora_A")}
    assert len(names) == (4 if targets != "all-linear" else 8)
    ref_state = ref.state_dict()
    with torch.no_grad():
        for name, layer in lora.lora_layers(ours).items():
            prefix = f"base_model.model.{name}"
            ref_state[f"{prefix}.lora_B.default.weight"].normal_(std=0.1)
            layer.lora_A.weight.copy_(ref_state[f"{prefix}.lora_A.default.weight"])
            layer.lora_B.weight.copy_(ref_state[f"{prefix}.lora_B.default.weight"])
            if dora:
                ref_state[f"{prefix}.lora_magnitude_vector.default.weight"].mul_(1.1)
                layer.lora_magnitude_vector.copy_(ref_state[f"{prefix}.lora_magnitude_vector.default.weight"])
    ids = torch.randint(0, 50, (2, 9))
    with torch.no_grad():
        ours_logits, ref_logits = ours(ids).logits, ref(ids).logits
        assert (ours_logits - base(ids).logits).abs().max() > 1e-2  # the adapter changes the output
    assert_close(ours_logits, ref_logits, atol=1e-6, rtol=1e-5)   # same model class: only op order differs
    lora.merge(ours)
    ref_weights = ref.merge_and_unload().state_dict()
    for name, layer in lora.lora_layers(ours).items():
        assert layer.base_layer.weight.shape == (layer.in_features, layer.out_features)  # still Conv1D's (in, out)
        assert_close(layer.base_layer.weight, ref_weights[f"{name}.weight"], atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        assert_close(ours(ids).logits, ours_logits, atol=1e-5, rtol=1e-5)  # merged = unmerged
    lora.unmerge(ours)
    for name, layer in lora.lora_layers(ours).items():
        assert_close(layer.base_layer.weight, base.get_submodule(name).weight, atol=1e-6, rtol=1e-5)


def test_non_linear_target_is_named_with_its_type():
    with pytest.raises(ValueError, match=r"Conv1D.*other types: \['transformer.wte \(Embedding\)'\]"):
        inject_lora(tiny_gpt2(), ["wte"])


def test_scaling_and_init():
    layer = LoRALinear(nn.Linear(32, 24), r=4, alpha=8)
    assert layer.scaling == 2.0
    assert LoRALinear(nn.Linear(32, 24), r=4, alpha=8, rslora=True).scaling == 4.0  # α/√r
    assert torch.count_nonzero(layer.lora_B.weight) == 0 and torch.count_nonzero(layer.lora_A.weight) == 4 * 32
    x = torch.randn(3, 32)
    assert torch.equal(layer(x), layer.base_layer(x))  # B = 0: training starts exactly at W₀
    assert not any(p.requires_grad for p in layer.base_layer.parameters())


def test_dropout_only_on_lora_path():
    torch.manual_seed(1)
    layer = LoRALinear(nn.Linear(16, 16), r=2, alpha=2, dropout=0.5).train()
    x = torch.randn(4, 16)
    assert torch.equal(layer(x), layer.base_layer(x))  # B = 0: dropout on x would not show on W₀x
    nn.init.normal_(layer.lora_B.weight)
    a, b = layer(x), layer(x)
    assert not torch.equal(a, b)  # dropout active in training
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    expected = layer.base_layer(x) + layer.scaling * x @ layer.lora_A.weight.T @ layer.lora_B.weight.T
    assert_close(layer(x), expected)


@settings(max_examples=30, deadline=None)
@given(out_f=st.integers(1, 40), in_f=st.integers(1, 40), r=st.integers(1, 12), dora=st.booleans(),
       rslora=st.booleans(), seed=st.integers(0, 2**16))
def test_merge_then_unmerge_restores_weights(out_f, in_f, r, dora, rslora, seed):
    torch.manual_seed(seed)
    layer = LoRALinear(nn.Linear(in_f, out_f), r=r, alpha=2 * r, rslora=rslora, dora=dora)
    nn.init.normal_(layer.lora_B.weight, std=0.1)
    if dora:
        layer.lora_magnitude_vector.data.mul_(1.3)
    w0 = layer.base_layer.weight.detach().clone()
    x = torch.randn(5, in_f)
    before = layer(x)
    layer.merge()
    assert_close(layer(x), before, atol=1e-5, rtol=1e-5)
    layer.unmerge()
    assert_close(layer.base_layer.weight, w0, atol=1e-6, rtol=1e-5)  # fp32 rounding of add/sub (and scale)
    assert_close(layer(x), before, atol=1e-5, rtol=1e-5)


def test_bad_input():
    base = nn.Linear(8, 8)
    for r in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="r .the LoRA rank. must be a positive int"):
            LoRALinear(base, r=r)
    with pytest.raises(ValueError, match="alpha must be"):
        LoRALinear(base, r=2, alpha=0)
    with pytest.raises(ValueError, match="dropout must be in"):
        LoRALinear(base, r=2, dropout=1.0)
    with pytest.raises(TypeError, match="base_layer must be a linear layer"):
        LoRALinear(nn.ReLU(), r=2)
    layer = LoRALinear(base, r=2)
    with pytest.raises(ValueError, match="not merged"):
        layer.unmerge()
    layer.merge()
    with pytest.raises(ValueError, match="already merged"):
        layer.merge()
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    with pytest.raises(ValueError, match="match no linear module"):
        inject_lora(model, ["q_proj"])
    with pytest.raises(TypeError, match="targets must be"):
        inject_lora(model, [])
    with pytest.raises(ValueError, match="no LoRA layers"):
        lora.merge(model)
    inject_lora(model, "0")
    with pytest.raises(ValueError, match="already has LoRA layers"):
        inject_lora(model, "0")


def tiny_llama(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, head_dim=8)).eval()


def test_count_parameters_and_freezing():
    model = tiny_llama(0)
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == (total, total)
    inject_lora(model, r=4)  # q (32→32) and v (32→16) in 2 layers
    expected = 2 * (4 * 32 + 32 * 4) + 2 * (4 * 32 + 16 * 4)
    assert count_parameters(model) == (expected, total + expected)
    assert all(".lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    assert not any(m.training for m in model.modules())  # injecting into an eval-mode model keeps it in eval mode


def test_adapter_save_load_round_trip(tmp_path):
    model = tiny_llama(0)
    inject_lora(model, "all-linear", r=4, alpha=8, dora=True)
    with torch.no_grad():
        for layer in lora.lora_layers(model).values():
            layer.lora_B.weight.normal_()
            layer.lora_magnitude_vector.mul_(0.9)
    folder = save_adapter(model, tmp_path / "adapter")
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    fresh = load_adapter(tiny_llama(0), folder)
    ids = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        assert torch.equal(fresh(ids).logits, model(ids).logits)


def test_adapter_refuses_other_model_or_rank(tmp_path):
    model = tiny_llama(0)
    inject_lora(model, r=4)
    folder = save_adapter(model, tmp_path / "a")
    with pytest.raises(ValueError, match="made for another base model"):
        load_adapter(tiny_llama(1), folder)  # same architecture, other weights
    other_rank = tiny_llama(0)
    inject_lora(other_rank, r=2)
    with pytest.raises(ValueError, match="r=4 does not match the model's LoRA layers .r=2."):
        load_adapter(other_rank, folder)
    with pytest.raises(ValueError, match="is not an adapter folder"):
        load_adapter(tiny_llama(0), tmp_path)
    lora.merge(model)
    with pytest.raises(ValueError, match="unmerge"):
        save_adapter(model, tmp_path / "b")
