"""Behaviour cloning (posttrain.behaviour_cloning) and shipped adapters (peft.shipped) on a tiny random LLaMA."""

from __future__ import annotations

import copy

import pytest
import torch

from course_lib.peft.adapter import WEIGHTS_FILE
from course_lib.peft.lora import lora_layers
from course_lib.peft.shipped import SHIP_FILE
from course_lib.posttrain.behaviour_cloning import (
    data_sha256,
    load_shipped,
    ship_adapter,
    train_lora_sft,
    verify_shipped,
)
from course_lib.posttrain.sft import IGNORE, pack, render_with_mask

CHATS = [[{"role": "user", "content": f"Weather in {city}?"},
          {"role": "assistant", "content": f'<tool_call>{{"name": "weather", "city": "{city}"}}</tool_call>'}]
         for city in ("Paris", "Oslo", "Lima", "Cairo", "Tokyo", "Quito", "Rome", "Delhi")]


@pytest.fixture(scope="module")
def tok():
    from course_lib import pretrained

    return pretrained.smollm2_tokenizer()


@pytest.fixture
def model(tiny_llama, one_thread):
    return copy.deepcopy(tiny_llama)  # the session fixture stays LoRA-free


def test_training_lowers_the_assistant_loss_and_is_deterministic(model, tiny_llama, tok):
    kwargs = dict(targets=("q_proj", "v_proj", "o_proj"), r=4, alpha=8, lr=1e-2, steps=12, batch_tokens=400,
                  seed=3, progress=False)
    losses = train_lora_sft(model, tok, CHATS, **kwargs)
    assert len(losses) == 12 and all(x == x for x in losses)
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses
    assert not model.training and set(lora_layers(model)) and all(
        not p.requires_grad for n, p in model.named_parameters() if ".lora_" not in n)
    again = train_lora_sft(copy.deepcopy(tiny_llama), tok, CHATS, **kwargs)
    assert again == losses  # same seed: same LoRA init, same data order, same losses


def test_loss_is_on_assistant_tokens_only(tok):
    from course_lib import pretrained

    ids, mask = render_with_mask(CHATS[0], tok, pretrained.smollm2_chat_template())
    labels = pack([(ids, mask)], 256).labels[0]
    labelled = tok.decode([t for t in labels.tolist() if t != IGNORE])
    assert labelled == CHATS[0][1]["content"] + "<|im_end|>\n"


def test_epochs_cover_every_conversation_once_per_pass(model, tok):
    losses = train_lora_sft(model, tok, CHATS, epochs=2, batch_tokens=1, lr=1e-3, progress=False)
    assert len(losses) == 2 * len(CHATS)  # batch_tokens=1: one chat per step


def test_ship_verify_load_round_trip(model, tiny_llama, tok, tmp_path):
    losses = train_lora_sft(model, tok, CHATS, r=4, lr=1e-2, steps=3, batch_tokens=400, progress=False)
    folder = ship_adapter(model, tmp_path / "bc", {"seed": 0, "steps": 3, "data_sha256": data_sha256(CHATS)}, losses)
    config = verify_shipped(folder)
    assert config["losses"] == pytest.approx(losses, abs=1e-6) and config["lora"]["r"] == 4
    assert config["data_sha256"] == data_sha256(copy.deepcopy(CHATS)) != data_sha256(CHATS[:-1])
    from safetensors.torch import load_file

    assert all(t.dtype == torch.float16 for t in load_file(str(folder / WEIGHTS_FILE)).values())
    fresh = copy.deepcopy(tiny_llama)
    assert load_shipped(fresh, folder) == config
    ids = torch.tensor([tok.encode("Weather in Oslo?")])
    torch.testing.assert_close(fresh(ids).logits, model(ids).logits, atol=2e-2, rtol=1e-3)  # fp16 weights


def test_tampered_weights_are_refused(model, tiny_llama, tok, tmp_path):
    losses = train_lora_sft(model, tok, CHATS[:2], r=4, steps=1, progress=False)
    folder = ship_adapter(model, tmp_path / "bc", {"seed": 0, "data_sha256": data_sha256(CHATS[:2])}, losses)
    raw = bytearray((folder / WEIGHTS_FILE).read_bytes())
    raw[-1] ^= 0x01  # one bit of the last tensor value
    (folder / WEIGHTS_FILE).write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not the shipped ones"):
        verify_shipped(folder)
    with pytest.raises(ValueError, match="not the shipped ones"):
        load_shipped(copy.deepcopy(tiny_llama), folder)
    (folder / SHIP_FILE).unlink()
    with pytest.raises(ValueError, match="config.json is missing"):
        verify_shipped(folder)


def test_adapter_for_another_base_is_refused(model, tok, tmp_path):
    from course_lib.models.llama import LlamaForCausalLM

    losses = train_lora_sft(model, tok, CHATS[:2], r=4, steps=1, progress=False)
    folder = ship_adapter(model, tmp_path / "bc", {"seed": 0, "data_sha256": "x"}, losses)
    torch.manual_seed(1)
    other = LlamaForCausalLM(copy.deepcopy(model.config)).eval()
    with pytest.raises(ValueError, match="another base model"):
        load_shipped(other, folder)


@pytest.mark.parametrize("conversations, match", [
    ([], "non-empty list"),
    ([[{"role": "user", "content": "hi"}]], r"conversations\[0\] has no assistant turn"),
    ([CHATS[0], []], r"conversations\[1\] must be a non-empty list"),
    ("hello", "non-empty list"),
])
def test_bad_conversations_raise(model, tok, conversations, match):
    with pytest.raises(ValueError, match=match):
        train_lora_sft(model, tok, conversations, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=0), "steps"), (dict(epochs=0), "epochs"), (dict(max_length=10), r"conversations\[0\] has \d+ tokens"),
    (dict(lr=0.0), "lr"), (dict(batch_tokens=-1), "batch_tokens"),
])
def test_bad_settings_raise(model, tok, kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_lora_sft(model, tok, CHATS, progress=False, **kwargs)


def test_ship_needs_seed_and_data_hash(model, tok, tmp_path):
    losses = train_lora_sft(model, tok, CHATS[:2], r=4, steps=1, progress=False)
    with pytest.raises(ValueError, match="data_sha256"):
        ship_adapter(model, tmp_path / "a", {"seed": 0}, losses)
    with pytest.raises(ValueError, match="losses"):
        ship_adapter(model, tmp_path / "a", {"seed": 0, "data_sha256": "x"}, [])
    with pytest.raises(ValueError, match="writes them"):
        ship_adapter(model, tmp_path / "a", {"seed": 0, "data_sha256": "x", "losses": [1.0]}, losses)


def test_save_adapter_dtype_must_be_floating(model, tok, tmp_path):
    from course_lib.peft.adapter import save_adapter

    train_lora_sft(model, tok, CHATS[:1], r=4, steps=1, progress=False)
    with pytest.raises(TypeError, match="dtype"):
        save_adapter(model, tmp_path / "a", dtype=torch.int8)
