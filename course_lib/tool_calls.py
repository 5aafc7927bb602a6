"""The course's tool-call task: teach a chat model one fixed JSON format for calling tools.

``tool_calls.jsonl`` in :mod:`course_lib.datasets` (made by ``data/make_tool_calls.py``) pairs English requests with the
call that answers them, e.g. "Convert 76 AUD to JPY." -> ``{"tool": "convert", "args": {"amount":
76, "from": "AUD", "to": "JPY"}}``. Chapter 05 fine-tunes SmolLM2 on it with LoRA; the agent
chapter reuses the tools and the format.

Scores on held-out requests:

- exact-format rate: the reply is one JSON object ``{"tool": <known tool>, "args": {...}}`` whose
  argument names are exactly that tool's;
- argument accuracy: the reply equals the expected call (tool and every argument value).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from course_lib.checks import check_device
from course_lib.datasets import dataset

DATA_FILE = dataset("tool_calls.jsonl")
TOOLS = {"weather": ("city",), "convert": ("amount", "from", "to"), "timer": ("minutes",)}
CURRENCIES = ("USD", "EUR", "JPY", "GBP", "CNY", "CHF", "CAD", "AUD")


def _args(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


# each tool's "args" as a JSON Schema (the agent chapter validates calls and constrains decoding with it)
SCHEMAS = {"weather": _args({"city": {"type": "string", "minLength": 1}}),
           "convert": _args({"amount": {"type": "number", "minimum": 0}, "from": {"enum": list(CURRENCIES)},
                             "to": {"enum": list(CURRENCIES)}}),
           "timer": _args({"minutes": {"type": "integer", "minimum": 1, "maximum": 1440}})}
SYSTEM = "Answer with one JSON tool call: weather, convert or timer."  # short: every token costs CPU time


@dataclass(frozen=True)
class Example:
    """One example of the tool-call task: an English request and the call that answers it (``{"tool", "args"}``)."""

    request: str
    call: dict

    @property
    def answer(self) -> str:
        """The reply the model should produce (compact JSON)."""
        return json.dumps(self.call)


def load(split: str) -> list[Example]:
    """The ``"train"`` or ``"test"`` examples, in file order."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rows = [json.loads(line) for line in DATA_FILE.read_text(encoding="utf-8").splitlines()]
    return [Example(r["request"], r["call"]) for r in rows if r["split"] == split]


def prompt(request: str) -> str:
    """SmolLM2's chat prompt for one request (system line listing the tools, then the user turn)."""
    from course_lib.pretrained import smollm2_chat_prompt

    return smollm2_chat_prompt([{"role": "system", "content": SYSTEM}, {"role": "user", "content": request}])


def training_batch(tokenizer, examples: list[Example], pad_id: int = 0,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids`` and ``labels`` ``(B, T)``: labels are -100 except on the answer + ``<|im_end|>``.

    The loss is the next-token cross-entropy on the answer only (the prompt is given, not learned).
    Both tensors are built on the CPU and returned on ``device`` (pass the model's, e.g. ``cfg.device``).
    """
    device = check_device(device)
    rows, labels = [], []
    for ex in examples:
        p = tokenizer.encode(prompt(ex.request))
        a = tokenizer.encode(ex.answer + "<|im_end|>")
        rows.append(p + a)
        labels.append([-100] * len(p) + a)
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    lab = torch.full((len(rows), T), -100, dtype=torch.long)
    for i, (r, lb) in enumerate(zip(rows, labels)):
        ids[i, :len(r)] = torch.tensor(r)
        lab[i, :len(lb)] = torch.tensor(lb)
    return ids.to(device), lab.to(device)


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of position t predicting labels[t + 1], over answer tokens only."""
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)


def parse(reply: str) -> dict | None:
    """The call in ``reply`` if it has the exact format (one JSON object, known tool, its argument names)."""
    try:
        call = json.loads(reply.strip())
    except json.JSONDecodeError:
        return None
    if not isinstance(call, dict) or set(call) != {"tool", "args"} or call["tool"] not in TOOLS:
        return None
    if not isinstance(call["args"], dict) or set(call["args"]) != set(TOOLS[call["tool"]]):
        return None
    return call


def score(replies: list[str], examples: list[Example]) -> dict[str, float]:
    """``{"format": exact-format rate, "accuracy": argument accuracy}`` over paired replies and examples."""
    if len(replies) != len(examples) or not replies:
        raise ValueError(f"need one reply per example, got {len(replies)} replies for {len(examples)} examples")
    calls = [parse(r) for r in replies]
    return {"format": sum(c is not None for c in calls) / len(calls),
            "accuracy": sum(c == ex.call for c, ex in zip(calls, examples)) / len(calls)}


@torch.no_grad()
def replies(model, tokenizer, examples: list[Example], max_new_tokens: int = 32, batch_size: int = 16) -> list[str]:
    """Greedy replies (left-padded batches through ``course_lib.generation.generate``), up to ``<|im_end|>``.

    The prompts go to the device of the model's parameters (CPU or CUDA alike).
    """
    from course_lib.generation import generate

    device = next(model.parameters()).device
    end = tokenizer.token_to_id("<|im_end|>")
    out = []
    for start in range(0, len(examples), batch_size):
        chunk = [tokenizer.encode(prompt(ex.request)) for ex in examples[start:start + batch_size]]
        T = max(len(c) for c in chunk)
        ids = torch.tensor([[0] * (T - len(c)) + c for c in chunk], device=device)  # (B, T), left-padded
        mask = torch.tensor([[0] * (T - len(c)) + [1] * len(c) for c in chunk], device=device)
        full = generate(model, ids, max_new_tokens, attention_mask=mask, stop_tokens=[end], pad_token_id=end)
        for row in full[:, T:].tolist():
            out.append(tokenizer.decode(row[:row.index(end)] if end in row else row, skip_special_tokens=True))
    return out
