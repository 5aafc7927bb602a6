"""Tensors built for training and evaluation follow the model's device, checked without a GPU.

The ``meta`` device stands in for CUDA: a tensor a builder leaves on the CPU is on the wrong device
there as well, yet nothing is computed, so the check is instant. Chapters 05 and 06 once built
their batches on the CPU while ``cfg.device`` held the model, which only failed on a GPU machine.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import course_lib.generation
from course_lib import tool_calls
from course_lib.profiling import synchronize

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"
META = torch.device("meta")


class CharTokenizer:
    """One id per character (ids 1..98), 99 = ``<|im_end|>``: enough for the builders, no files."""

    END = "<|im_end|>"

    def encode(self, text: str) -> list[int]:
        parts = text.split(self.END)
        ids = [1 + ord(c) % 98 for c in parts[0]]
        for part in parts[1:]:
            ids += [99] + [1 + ord(c) % 98 for c in part]
        return ids

    def token_to_id(self, token: str) -> int:
        return 99 if token == self.END else 0

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "x" * len(ids)


def _all_tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _all_tensors(item)]
    return []


@pytest.mark.parametrize("device", ["meta", META])
def test_training_batch_is_built_on_the_requested_device(device):
    examples = tool_calls.load("train")[:3]
    ids, labels = tool_calls.training_batch(CharTokenizer(), examples, device=device)
    assert ids.device == META and labels.device == META
    cpu_ids, cpu_labels = tool_calls.training_batch(CharTokenizer(), examples)   # default: the CPU
    assert cpu_ids.device.type == "cpu" and (ids.shape, labels.shape) == (cpu_ids.shape, cpu_labels.shape)


def test_replies_sends_prompts_to_the_model_device(monkeypatch):
    seen = []

    def fake_generate(model, input_ids, max_new_tokens, attention_mask=None, stop_tokens=(), pad_token_id=None):
        seen.append((input_ids.device, attention_mask.device))
        return torch.full((input_ids.shape[0], input_ids.shape[1] + 2), 99)   # every reply ends at once

    monkeypatch.setattr(course_lib.generation, "generate", fake_generate)
    model = torch.nn.Linear(2, 2, device=META)
    out = tool_calls.replies(model, CharTokenizer(), tool_calls.load("test")[:3], batch_size=2)
    assert out == ["", "", ""] and seen == [(META, META)] * 2


def test_synchronize_is_a_no_op_off_cuda():
    synchronize("cpu")
    synchronize(META)


def _notebook_functions(name: str, wanted: set[str], namespace: dict) -> dict:
    """Define the notebook's own functions ``wanted`` (only those, from their cells) in ``namespace``."""
    cells = json.loads((CHAPTERS / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    defs = [node for node in ast.parse(code).body if isinstance(node, ast.FunctionDef) and node.name in wanted]
    assert {d.name for d in defs} == wanted, f"{name}: expected functions {wanted}"
    exec(compile(ast.Module(defs, type_ignores=[]), name, "exec"), namespace)
    return namespace


def test_chapter05_training_batches_follow_cfg_device():
    ns = _notebook_functions("05_lora", {"batches"}, {
        "torch": torch, "tool_calls": tool_calls, "tok": CharTokenizer(), "batch_size": 2,
        "train_set": tool_calls.load("train")[:5], "cfg": SimpleNamespace(device=META)})
    tensors = _all_tensors(ns["batches"](0)(0))
    assert len(tensors) == 2 and all(t.device == META for t in tensors)


def test_chapter06_batches_follow_cfg_device():
    ns = _notebook_functions("06_p_tuning", {"encode"}, {
        "torch": torch, "tok": CharTokenizer(), "cfg": SimpleNamespace(device=META)})
    tensors = _all_tensors(ns["encode"]([("The pizza was great.", 1), ("The room was dull.", 0)]))
    assert len(tensors) == 3 and all(t.device == META for t in tensors)


def test_contrastive_embed_feeds_the_encoder_on_its_device():
    from course_lib.embedding.contrastive import embed

    class Model(torch.nn.Module):
        config = SimpleNamespace(pad_token_id=0)

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.empty(3, device=META))

        def forward(self, ids, mask):
            assert ids.device == mask.device == self.weight.device
            return SimpleNamespace(last_hidden_state=torch.zeros(*ids.shape, 3, device=ids.device))  # (B, T, 3)

    tokenizer = SimpleNamespace(encode=lambda text, max_length: SimpleNamespace(input_ids=[1] * len(text)))
    encoder = SimpleNamespace(model=Model(), tokenizer=tokenizer, max_seq_length=8)
    assert embed(encoder, ["ab", "abc"]).device == META


def test_bad_device_names_are_clear_errors():
    examples = tool_calls.load("train")[:1]
    with pytest.raises(ValueError, match="not a device name"):
        tool_calls.training_batch(CharTokenizer(), examples, device="gpu0")
    with pytest.raises(TypeError, match="str or torch.device"):
        tool_calls.training_batch(CharTokenizer(), examples, device=0)
    with pytest.raises(ValueError, match="not a device name"):
        synchronize("nvidia")
