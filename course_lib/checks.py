"""Input checks written once, so every model and config reports bad input the same way (COURSE_DESIGN §8)."""

from __future__ import annotations

import torch


def check_token_ids(ids: torch.Tensor, vocab_size: int, name: str = "input_ids", max_length: int | None = None) -> None:
    """Raise unless ``ids`` is an integer ``(B, T)`` tensor, T ≥ 1, values in [0, vocab_size), T ≤ max_length.

    A non-integer tensor (float ids) is a ``TypeError``; a wrong shape or value is a ``ValueError``.
    """
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an integer tensor (B, T) of int64, got {getattr(ids, 'dtype', type(ids).__name__)}")
    if ids.dim() != 2 or ids.shape[1] == 0:
        raise ValueError(f"{name} must have shape (B, T) with T >= 1, got {tuple(ids.shape)}")
    if max_length is not None and ids.shape[1] > max_length:
        raise ValueError(f"{name} has {ids.shape[1]} positions; the model has learned positions for at most {max_length}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"{name} must lie in [0, {vocab_size}), got values in [{low}, {high}] (vocab_size={vocab_size})")


def check_hidden(x: torch.Tensor, width: int, name: str = "x") -> None:
    """Raise ``ValueError`` unless ``x`` is a ``(B, T, width)`` tensor (hidden states entering a layer)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != width:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape (B, T, {width}), got {got}")


RECURRENT_MODES = ("parallel", "recurrent")  # the two forms of a linear-time sequence layer


def check_sequence_input(x: torch.Tensor, width: int, mode: str, state) -> None:
    """Input of a layer with a parallel form (training) and a recurrent form (inference): linear attention,
    RWKV, Mamba. ``mode`` in :data:`RECURRENT_MODES`, ``x`` ``(B, T, width)``, a ``state`` only when recurrent."""
    if mode not in RECURRENT_MODES:
        raise ValueError(f"mode must be one of {RECURRENT_MODES}, got {mode!r}")
    check_hidden(x, width)
    if mode == "parallel" and state is not None:
        raise ValueError("state is only used with mode='recurrent' (the parallel form starts from scratch)")


def check_positive_ints(config: object, *names: str) -> None:
    """Raise ``ValueError("<Config>.<name> must be a positive int, got …")`` for the first field that is not one."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{type(config).__name__}.{name} must be a positive int, got {value!r}")


def check_device(device: object, name: str = "device") -> torch.device:
    """``device`` as a ``torch.device``; a non-str/device is a ``TypeError``, an unknown name a ``ValueError``."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"{name} must be a str or torch.device, got {type(device).__name__}")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"{name}={device!r} is not a device name such as 'cpu', 'cuda' or 'cuda:0'") from error
