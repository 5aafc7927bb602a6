"""Behaviour cloning: train a LoRA adapter by SFT on chat demonstrations, then ship it with its recipe.

Behaviour cloning (Pomerleau 1989; WebGPT, Nakano et al. 2021 §3.3) is SFT on demonstrations of the
behaviour wanted: here, chats whose assistant turns show it (a tool call, a citation, a format). This
module is the one training loop the later chapters use, built from chapter 04d's and 05's pieces:

- :func:`course_lib.posttrain.sft.render_with_mask`: the chat rendered by the template, 1 on assistant tokens;
- :func:`course_lib.posttrain.sft.pack`: examples packed into rows, positions restarting at 0, so no
  padding is computed and attention stays inside each example (:func:`~course_lib.posttrain.sft.packed_causal_mask`);
- :func:`course_lib.posttrain.sft.sft_loss`: mean NLL over the assistant tokens only;
- :func:`course_lib.peft.lora.inject_lora`: only the low-rank matrices train (Hu et al. 2021).

Example (SmolLM2-135M-Instruct on 2 CPU cores: a few hundred short chats train in a few minutes)::

    model, tok = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    losses = train_lora_sft(model, tok, chats, steps=60, seed=0)
    ship_adapter(model, "data/adapters/my_bc", {"seed": 0, "steps": 60, "data_sha256": data_sha256(chats)}, losses)
    config = load_shipped(pretrained.smollm2(), "data/adapters/my_bc")  # verifies the hash, then loads

:func:`ship_adapter`, :func:`verify_shipped`, :func:`load_shipped` and :func:`data_sha256` live in
:mod:`course_lib.peft.shipped` (a lower layer, so ``agent`` and ``webgpt`` can load adapters) and are
re-exported here.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from course_lib import generation
from course_lib.peft.lora import DEFAULT_TARGETS, inject_lora, lora_layers
from course_lib.peft.shipped import data_sha256, load_shipped, ship_adapter, verify_shipped
from course_lib.posttrain.sft import pack, packed_causal_mask, render_with_mask, sft_loss


def _check_conversations(conversations) -> None:
    if not isinstance(conversations, list) or not conversations:
        raise ValueError("conversations must be a non-empty list of chats (each a list of {role, content} dicts)")
    for k, chat in enumerate(conversations):
        if not isinstance(chat, list) or not chat or not all(isinstance(m, dict) for m in chat):
            raise ValueError(f"conversations[{k}] must be a non-empty list of {{role, content}} dicts")
        if not any(m.get("role") == "assistant" for m in chat):
            raise ValueError(f"conversations[{k}] has no assistant turn: there is nothing to clone")


def _encode(conversations, tokenizer, template: str, max_length: int) -> list[tuple[list[int], list[int]]]:
    examples = []
    for k, chat in enumerate(conversations):
        try:
            ids, mask = render_with_mask(chat, tokenizer, template)
        except ValueError as err:
            raise ValueError(f"conversations[{k}]: {err}") from None
        if len(ids) > max_length:
            raise ValueError(f"conversations[{k}] has {len(ids)} tokens > max_length={max_length}; "
                             "shorten it or raise max_length")
        examples.append((ids, mask))
    return examples


def _batches(examples, batch_tokens: int, generator: torch.Generator):
    """One epoch: examples in a seeded random order, grouped until a group would exceed ``batch_tokens``."""
    group, size = [], 0
    for i in torch.randperm(len(examples), generator=generator).tolist():
        n = len(examples[i][0])
        if group and size + n > batch_tokens:
            yield group
            group, size = [], 0
        group.append(examples[i])
        size += n
    yield group


def _schedule(examples, batch_tokens: int, seed: int, epochs: int, steps: int | None) -> list[list]:
    """The groups of every step: ``epochs`` passes, or (``steps`` given) as many passes as fill ``steps``."""
    order, groups = torch.Generator().manual_seed(seed), []
    for epoch in itertools.count():
        if (epoch == epochs) if steps is None else (len(groups) >= steps):
            return groups[:steps]
        groups += _batches(examples, batch_tokens, order)


def train_lora_sft(model: nn.Module, tokenizer, conversations: list[list[dict]], *, template: str | None = None,
                   targets=DEFAULT_TARGETS, r: int = 8, alpha: float = 16.0, lr: float = 3e-4, epochs: int = 1,
                   steps: int | None = None, max_length: int = 512, batch_tokens: int = 2048, seed: int = 0,
                   max_grad_norm: float = 1.0, progress: bool = True) -> list[float]:
    """Behaviour-clone ``conversations`` into a LoRA adapter on ``model`` (in place); returns the per-step losses.

    The loss is the SFT loss on assistant tokens only. Each step packs a group of chats of at most
    ``batch_tokens`` tokens (one chat if it alone is larger) into rows of ``max_length``; AdamW at a
    constant ``lr``, gradients clipped to ``max_grad_norm``. ``steps`` (when given) runs exactly that
    many steps, going through the data as many times as needed; otherwise ``epochs`` passes. LoRA
    (``targets``, ``r``, ``alpha``) is injected unless the model already has LoRA layers, which then
    go on training. ``seed`` fixes the LoRA initialisation and the data order, so the same call gives
    the same losses. ``template`` defaults to SmolLM2's chat template. The model is left in eval mode.
    Runs on the model's device with the torch threads set by the caller (``torch.set_num_threads``).
    """
    _check_conversations(conversations)
    if not hasattr(model, "forward_rows"):
        raise TypeError(f"model must be a course LlamaForCausalLM (needs forward_rows for packed rows), "
                        f"got {type(model).__name__}")
    for name, value in (("epochs", epochs), ("max_length", max_length), ("batch_tokens", batch_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
        raise ValueError(f"steps must be a positive int or None, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if template is None:
        from course_lib import pretrained

        template = pretrained.smollm2_chat_template()
    from tqdm.auto import tqdm

    examples = _encode(conversations, tokenizer, template, max_length)
    torch.manual_seed(seed)  # the LoRA A matrices' initialisation
    if not lora_layers(model):
        inject_lora(model, targets, r=r, alpha=alpha)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = _schedule(examples, batch_tokens, seed, epochs, steps)
    device = generation.model_device(model)
    losses: list[float] = []
    bar = tqdm(schedule, desc="behaviour cloning", disable=not progress)
    model.train()
    try:
        for group in bar:
            batch = pack(group, max_length)
            ids, pos = batch.input_ids.to(device), batch.position_ids.to(device)  # (R, L)
            logits = model.forward_rows(ids, pos, packed_causal_mask(pos))  # (R, L, V)
            loss = sft_loss(logits, batch.labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    finally:
        bar.close()
        model.eval()
    return losses


__all__ = ["data_sha256", "load_shipped", "ship_adapter", "train_lora_sft", "verify_shipped"]
