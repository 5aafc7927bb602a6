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
    special_tokens = {END: 99}

    def encode(self, text: str, allow_special: bool = True) -> list[int]:
        if not allow_special:                        # special strings stay text (chat_template.encode_chat)
            return [1 + ord(c) % 98 for c in text]
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


# Chapters 07 and 09: MiniLM and SmolLM2 on cfg.device, and the RAG pieces that build ids follow them.

def test_pretrained_models_load_on_the_requested_device():
    from course_lib import pretrained

    encoder = pretrained.minilm(device="meta")
    assert {p.device for p in encoder.model.parameters()} == {META}
    assert {p.device for p in pretrained.smollm2(device=META).parameters()} == {META}
    assert {p.device.type for p in pretrained.minilm().model.parameters()} == {"cpu"}   # default: the CPU
    with pytest.raises(ValueError, match="not a device name"):
        pretrained.minilm(device="gpu0")


def test_model_device_looks_through_wrappers():
    from course_lib.generation import Recompute, model_device

    model = torch.nn.Linear(2, 2, device=META)
    assert model_device(model) == META and model_device(Recompute(model)) == META
    assert model_device(object()) == torch.device("cpu")


@pytest.mark.parametrize("name", ["07_embedding", "09_rag"])
def test_chapters_07_and_09_load_their_models_on_cfg_device(name):
    cells = json.loads((CHAPTERS / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
    tree = ast.parse("\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code"))
    loads = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr in ("minilm", "smollm2") and ast.unparse(node.func.value) == "pretrained"]
    assert loads, f"{name}: no pretrained.minilm()/smollm2() call"
    for call in loads:
        assert [ast.unparse(k) for k in call.keywords] == ["device=cfg.device"], f"{name}: {ast.unparse(call)}"


class MetaDecoder(torch.nn.Module):
    """A decoder whose weights live on ``meta``: it records the devices of what it is fed, returns CPU logits."""

    def __init__(self, vocab: int = 100):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(1, device=META))
        self.vocab, self.seen = vocab, []

    def new_cache(self, batch_size, max_len):
        return None

    def decode_step(self, input_ids, cache, attention_mask=None):
        self.seen.append((input_ids.device, None if attention_mask is None else attention_mask.device))
        return torch.zeros(input_ids.shape[0], self.vocab), None                                 # (B, V)


def test_llm_reranker_feeds_the_model_on_its_device():
    from course_lib.rag.rerank import LLMReranker

    tok = CharTokenizer()
    tok.pad_token_id, tok.encode_ordinary = 0, tok.encode
    model = MetaDecoder()
    scores = LLMReranker(model, tok, batch_size=2).score("What?", ["a", "bb", "ccc"])
    assert scores.shape == (3,) and model.seen == [(META, META)] * 2


def test_local_chat_model_sends_the_prompt_to_the_model_device(monkeypatch):
    from course_lib.chat import LocalChatModel

    seen = []

    def fake_generate_tokens(model, input_ids, max_new_tokens, **kwargs):
        seen.append(input_ids.device)
        yield torch.tensor([99])                                   # <|im_end|> at once

    monkeypatch.setattr(course_lib.generation, "generate_tokens", fake_generate_tokens)
    reply = LocalChatModel(MetaDecoder(), CharTokenizer()).chat([{"role": "user", "content": "Hi"}], max_tokens=4)
    assert reply.content == "" and seen == [META]
