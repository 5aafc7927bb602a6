"""One batch format for every tokenizer: padded ids plus the attention mask, as HF tokenizers return them.

Decoders pad on the left (the last position of every row is then a real token, so generation can
continue all rows at once); encoders pad on the right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

PADDING_SIDES = ("left", "right")


@dataclass
class BatchEncoding:
    """A padded batch: ``input_ids`` and ``attention_mask`` (1 = real token, 0 = padding), both ``(B, T)`` int64."""
    input_ids: torch.Tensor       # (B, T)
    attention_mask: torch.Tensor  # (B, T)


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, padding_side: str = "right",
              width: int | None = None) -> BatchEncoding:
    """Pad token-id lists with ``pad_id`` on ``padding_side`` to the longest, as HF ``tokenizer(texts, padding=True)``,
    or to a fixed ``width`` (HF ``padding="max_length"``; a longer row is a ``ValueError``)."""
    if padding_side not in PADDING_SIDES:
        raise ValueError(f"padding_side must be one of {PADDING_SIDES}, got {padding_side!r}")
    if not rows:
        raise ValueError("need at least one row to pad")
    longest = max(len(r) for r in rows)
    if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < longest):
        raise ValueError(f"a row needs {longest} tokens, more than the padded width {width!r}")
    width = longest if width is None else width
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if padding_side == "left" else slice(0, len(row))
        ids[i, span] = torch.tensor(list(row), dtype=torch.long)
        mask[i, span] = 1
    return BatchEncoding(ids, mask)


def check_texts(texts) -> list[str]:
    """``texts`` as a non-empty list of str, else ``TypeError`` (a single str is refused: wrap it in a list)."""
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts or \
            not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a non-empty list of str (wrap a single text in a list)")
    return list(texts)
