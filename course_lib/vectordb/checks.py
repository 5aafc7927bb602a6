"""Input checks shared by every index and the store: one clear error per kind of bad input."""

from __future__ import annotations

import numpy as np

METRICS = ("ip", "l2")


def check_metric(metric: str) -> str:
    """``metric`` if it is one of :data:`METRICS` (``ip``, ``l2``), else ``ValueError``."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def as_vectors(x, dim: int | None, name: str = "x") -> np.ndarray:
    """``x`` as a C-contiguous float32 ``(N, dim)`` array; 1-D input is one vector.

    Raises ``TypeError`` for non-numeric input and ``ValueError`` for a wrong shape or a
    NaN / infinite entry (one such vector poisons every distance it meets).
    """
    try:
        arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}") from err
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d), got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has dimension {arr.shape[1]}, the index expects d={dim}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{name} holds NaN or infinite values (first in row {bad})")
    return arr


def check_search_k(k, size: int) -> int:
    """``k`` as an int in ``1..size`` (``TypeError`` / ``ValueError`` otherwise)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if k > size:
        raise ValueError(f"k={k} is larger than the number of stored vectors ({size})")
    return int(k)


def check_positive(value, name: str) -> int:
    """``value`` as a positive int; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)
