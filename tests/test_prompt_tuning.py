"""Prompt tuning, P-Tuning (MLP / LSTM) and prefix tuning (with / without projection) equal to HF peft 0.21.2.

Encoders are compared with copied weights (peft's parameter names are ours); whole forwards on
SmolLM2's first 4 real layers (full vocabulary) and one prefix-tuned forward on the whole model.
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from course_lib.peft.prompt_tuning import (
    PrefixEncoder,
    PromptEmbedding,
    PromptEncoder,
    forward_with_prefix,
    forward_with_prompts,
)
from course_lib.peft.reference import hf_llama
from tests.test_lora import TOL, real_smollm2

N = 5  # virtual tokens


def peft_model(ours, config):
    from peft import get_peft_model

    return get_peft_model(hf_llama(ours), config).eval()


def copy_into(ours: torch.nn.Module, ref_encoder: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in ref_encoder.parameters():
            p.normal_(std=0.1)  # peft inits some of these to zero or to one value: randomise first
    result = ours.load_state_dict(ref_encoder.state_dict(), strict=True)
    assert not result.missing_keys


@pytest.mark.parametrize("init_text", [False, True])
def test_prompt_tuning_equals_peft(smollm2_state_dict, init_text):
    from peft import PromptTuningConfig

    model = real_smollm2(smollm2_state_dict)
    ref = peft_model(model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N))
    prompt = PromptEmbedding(N, 576)
    copy_into(prompt, ref.prompt_encoder["default"])
    if init_text:  # peft's TEXT init: the text's token ids, repeated to n
        from course_lib.pretrained import smollm2_tokenizer

        ids = smollm2_tokenizer().encode("Classify:")
        prompt = PromptEmbedding.from_token_ids(N, model.model.embed_tokens, ids)
        expected = model.model.embed_tokens.weight[(ids * N)[:N]]
        assert torch.equal(prompt.embedding.weight, expected)
        ref.prompt_encoder["default"].embedding.weight.data.copy_(expected)
    ids = torch.randint(0, 49152, (2, 7))
    with torch.no_grad():
        ours = forward_with_prompts(model, prompt(2), ids).logits
        theirs = ref(input_ids=ids).logits
    assert ours.shape == (2, N + 7, 49152)
    assert_close(ours, theirs, **TOL)


@pytest.mark.parametrize("kind", ["MLP", "LSTM"])
def test_p_tuning_prompt_encoder_equals_peft(smollm2_state_dict, kind):
    from peft import PromptEncoderConfig

    model = real_smollm2(smollm2_state_dict)
    ref = peft_model(model, PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=N, encoder_hidden_size=32,
                                                encoder_reparameterization_type=kind))
    encoder = PromptEncoder(N, 576, 32, kind=kind)
    copy_into(encoder, ref.prompt_encoder["default"])
    with torch.no_grad():
        assert_close(encoder(3), ref.prompt_encoder["default"](torch.arange(N).expand(3, -1)), atol=1e-6, rtol=1e-6)
        ids = torch.randint(0, 49152, (2, 6))
        assert_close(forward_with_prompts(model, encoder(2), ids).logits, ref(input_ids=ids).logits, **TOL)


@pytest.mark.parametrize("projection", [False, True])
def test_prefix_encoder_and_forward_equal_peft(smollm2_state_dict, projection):
    from peft import PrefixTuningConfig

    model = real_smollm2(smollm2_state_dict)
    ref = peft_model(model, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N, prefix_projection=projection,
                                               encoder_hidden_size=48))
    kv_dim = 3 * 64  # SmolLM2's GQA: 3 key/value heads of 64 (peft sizes the prefix the same way)
    encoder = PrefixEncoder(N, 4, kv_dim, token_dim=kv_dim, hidden_size=48, projection=projection)
    copy_into(encoder, ref.prompt_encoder["default"])
    ids = torch.randint(0, 49152, (2, 6))
    with torch.no_grad():
        assert_close(encoder(2), ref.prompt_encoder["default"](torch.arange(N).expand(2, -1)), atol=1e-6, rtol=1e-6)
        ours = forward_with_prefix(model, encoder(2), ids).logits
        theirs = ref(input_ids=ids).logits
    assert ours.shape == (2, 6, 49152)
    assert_close(ours, theirs, **TOL)


def test_prefix_tuned_whole_smollm2_equals_peft(smollm2_state_dict):
    from peft import PrefixTuningConfig

    model = real_smollm2(smollm2_state_dict, layers=30)
    ref = peft_model(model, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N))
    encoder = PrefixEncoder(N, 30, 192)
    copy_into(encoder, ref.prompt_encoder["default"])
    ids = torch.randint(0, 49152, (1, 8))
    with torch.no_grad():
        ours, theirs = forward_with_prefix(model, encoder(1), ids).logits, ref(input_ids=ids).logits
    # 30 layers of fp32 with different attention kernels: without a prefix our SmolLM2 and HF's already differ by
    # ~4e-5 on logits of size ~20; a random prefix at every layer grows that to ~1.3e-4 (a wrong position or
    # key/value layout gives errors of order 1)
    assert_close(ours, theirs, atol=3e-4, rtol=1e-4)


def test_gradients_reach_only_the_prompts(smollm2_state_dict):
    model = real_smollm2(smollm2_state_dict, layers=2).requires_grad_(False)
    ids = torch.randint(0, 49152, (2, 4))
    for encoder, fwd in ((PromptEncoder(N, 576, 16, kind="LSTM"), forward_with_prompts),
                         (PrefixEncoder(N, 2, 192), forward_with_prefix)):
        fwd(model, encoder(2), ids).logits.sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_bad_input(smollm2_state_dict):
    for n in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="num_virtual_tokens must be a positive int"):
            PromptEmbedding(n, 8)
    with pytest.raises(ValueError, match="kind must be 'MLP' or 'LSTM'"):
        PromptEncoder(3, 8, 8, kind="GRU")
    with pytest.raises(ValueError, match="init_embeddings must have shape"):
        PromptEmbedding(3, 8, torch.zeros(2, 8))
    with pytest.raises(ValueError, match="projection=True needs"):
        PrefixEncoder(3, 2, 8, projection=True)
    model = real_smollm2(smollm2_state_dict, layers=2)
    with pytest.raises(ValueError, match="past must be"):
        forward_with_prefix(model, torch.zeros(1, 3, 10), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="prompts must be"):
        forward_with_prompts(model, torch.zeros(2, 3, 576), torch.zeros(1, 2, dtype=torch.long))
