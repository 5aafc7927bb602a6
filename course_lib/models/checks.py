"""Input checks shared by every model that reads token ids, so each error reads the same way."""

from __future__ import annotations

import torch


def check_token_ids(ids: torch.Tensor, vocab_size: int, name: str = "input_ids", max_length: int | None = None) -> None:
    """Raise unless ``ids`` is an integer ``(B, T)`` tensor, T ≥ 1, values in [0, vocab_size), T ≤ max_length."""
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an integer tensor (B, T) of int64, got {getattr(ids, 'dtype', type(ids).__name__)}")
    if ids.dim() != 2 or ids.shape[1] == 0:
        raise ValueError(f"{name} must have shape (B, T) with T >= 1, got {tuple(ids.shape)}")
    if max_length is not None and ids.shape[1] > max_length:
        raise ValueError(f"{name} has {ids.shape[1]} positions; the model has learned positions for at most {max_length}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"{name} must lie in [0, {vocab_size}), got values in [{low}, {high}] (vocab_size={vocab_size})")
