"""Supervised fine-tuning (SFT) on chats: assistant-only loss and packing, as TRL's ``SFTTrainer``.

1. **Chat template.** A conversation is rendered to text by the model's Jinja2 template
   (``<|im_start|>role\\ncontent<|im_end|>\\n`` for SmolLM2) and tokenized.
2. **Assistant-only loss.** Only the tokens an assistant turn adds (its content and end marker)
   carry a label; system/user tokens get ``-100`` and are ignored (InstructGPT, Ouyang et al.
   2022 §3.5; TRL's ``assistant_only_loss``).
3. **Packing.** Short examples are concatenated into one row to avoid padding. Positions restart
   at 0 for each example and attention is block-diagonal (each token sees only its own example),
   so a packed row computes exactly what the examples compute alone; the label of each example's
   first token is dropped (it would be predicted from the previous example). This is TRL's
   ``padding_free`` layout (``DataCollatorForLanguageModeling``: ``position_ids``, no mask).

Loss: Σ −log π(label) over labelled tokens / number of labelled tokens (``SFTTrainer.compute_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib.attention import causal_mask
from course_lib.posttrain.logprobs import token_logprobs
from course_lib.tokenizers.chat_template import check_messages, render_chat

IGNORE = -100  # PyTorch's / TRL's ignore_index


def render_with_mask(messages: list[dict], tokenizer, template: str) -> tuple[list[int], list[int]]:
    """Token ids of the rendered chat and a 0/1 mask that is 1 on the tokens of assistant turns.

    Each assistant turn's text is what rendering ``messages[:i + 1]`` adds to rendering
    ``messages[:i]`` with the generation prompt; the pieces are tokenized one by one and must
    join to the tokenization of the whole text (else ``ValueError``: a token crosses a boundary).
    """
    check_messages(messages)
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError("messages have no assistant turn: there would be nothing to learn")
    pieces, done = [], ""  # (text, is_assistant)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = render_chat(messages[:i], template, add_generation_prompt=True)
        turn = render_chat(messages[:i + 1], template, add_generation_prompt=False)
        if not prompt.startswith(done) or not turn.startswith(prompt):
            raise ValueError("the chat template does not render turns as prefixes of each other")
        pieces += [(prompt[len(done):], False), (turn[len(prompt):], True)]
        done = turn
    full = render_chat(messages, template, add_generation_prompt=False)
    pieces.append((full[len(done):], False))
    ids, mask = [], []
    for text, is_assistant in pieces:
        part = tokenizer.encode(text) if text else []
        ids += part
        mask += [int(is_assistant)] * len(part)
    if ids != tokenizer.encode(full):
        raise ValueError("tokenizing the turns one by one differs from tokenizing the whole chat")
    return ids, mask


@dataclass
class PackedBatch:
    """Packed rows: ``input_ids``, ``labels`` (``-100`` = no loss) and ``position_ids``, all ``(R, L)``."""
    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    seq_lengths: list[list[int]]  # the example lengths in each row (TRL's ``seq_lengths``)


def pack(examples: list[tuple[list[int], list[int]]], max_length: int, pad_id: int = 0) -> PackedBatch:
    """Pack ``(ids, loss_mask)`` examples in order into rows of ≤ ``max_length`` tokens (next-fit)."""
    if not examples:
        raise ValueError("examples must be a non-empty list of (ids, loss_mask) pairs")
    rows: list[list[tuple[list[int], list[int]]]] = [[]]
    for k, (ids, mask) in enumerate(examples):
        if len(ids) != len(mask) or not ids:
            raise ValueError(f"examples[{k}]: ids and loss_mask must be non-empty and of equal length, "
                             f"got {len(ids)} and {len(mask)}")
        if len(ids) > max_length:
            raise ValueError(f"examples[{k}] has {len(ids)} tokens > max_length={max_length}")
        if sum(len(i) for i, _ in rows[-1]) + len(ids) > max_length:
            rows.append([])
        rows[-1].append((ids, mask))
    L = max(sum(len(i) for i, _ in row) for row in rows)
    input_ids = torch.full((len(rows), L), pad_id, dtype=torch.long)  # (R, L)
    labels = torch.full((len(rows), L), IGNORE, dtype=torch.long)  # (R, L)
    position_ids = torch.zeros((len(rows), L), dtype=torch.long)  # (R, L); padding: position 0, alone
    for r, row in enumerate(rows):
        start = 0
        for ids, mask in row:
            n = len(ids)
            t = torch.tensor(ids)
            input_ids[r, start:start + n] = t
            labels[r, start:start + n] = torch.where(torch.tensor(mask, dtype=torch.bool), t, IGNORE)
            labels[r, start] = IGNORE  # the first token would be predicted from the previous example
            position_ids[r, start:start + n] = torch.arange(n)
            start += n
    return PackedBatch(input_ids, labels, position_ids, [[len(i) for i, _ in row] for row in rows])


def packed_causal_mask(position_ids: torch.Tensor) -> torch.Tensor:
    """Block-diagonal causal mask ``(B, 1, T, T)`` (True = may attend): a new example starts where the position is 0."""
    if position_ids.dim() != 2:
        raise ValueError(f"position_ids must be (B, T), got {tuple(position_ids.shape)}")
    example = (position_ids == 0).cumsum(-1)  # (B, T): which example each token belongs to
    same = example[:, :, None] == example[:, None, :]  # (B, T, T)
    return (same & causal_mask(position_ids.shape[1], device=position_ids.device))[:, None]  # (B, 1, T, T)


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL over labelled tokens: position t predicts ``labels[:, t + 1]`` (``-100`` ignored)."""
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"logits must be (B, T, V) and labels (B, T), got {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)}")
    targets = labels[:, 1:]  # (B, T - 1)
    keep = targets != IGNORE
    if not keep.any():
        raise ValueError("labels select no token (every label is -100)")
    logp = token_logprobs(logits[:, :-1], targets.clamp(min=0))  # (B, T - 1)
    return -(logp * keep).sum() / keep.sum()
