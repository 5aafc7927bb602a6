"""Attention maps on screen: pool long maps to fewer cells and label the axes (re-exported by :mod:`.attention_data`).

Masked cells are NaN in the maps :mod:`course_lib.viz.attention_data` prepares; pooling ignores them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pool(maps: np.ndarray, size: int) -> np.ndarray:
    """Average-pool ``(..., T_q, T_k)`` maps to at most ``size × size`` cells, ignoring masked (NaN) cells.

    Blocks that are entirely masked stay NaN.
    """
    t_q, t_k = maps.shape[-2:]
    row_starts = np.linspace(0, t_q, min(size, t_q) + 1).astype(int)[:-1]
    col_starts = np.linspace(0, t_k, min(size, t_k) + 1).astype(int)[:-1]
    kept = ~np.isnan(maps)

    def block_sum(x):
        return np.add.reduceat(np.add.reduceat(x, row_starts, axis=-2), col_starts, axis=-1)

    total = block_sum(np.where(kept, maps, 0.0).astype(np.float64))
    count = block_sum(kept.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).astype(np.float32)  # (..., ≤size, ≤size)


def tick_positions(n: int, max_ticks: int = 40) -> list[int]:
    """Indices of at most ``max_ticks`` evenly spaced labels out of ``n`` (all of them when n is small)."""
    if n <= max_ticks:
        return list(range(n))
    step = int(np.ceil(n / max_ticks))
    return list(range(0, n, step))


def axis_labels(tokens: Sequence[str]) -> list[str]:
    """Unique category labels ``"i·token"`` (tokens repeat; plotly would merge equal categories)."""
    return [f"{i}·{_visible(t)}" for i, t in enumerate(tokens)]


def _visible(token: str) -> str:
    """Show whitespace tokens: ' ' → '␣', newline → '⏎' (else they are blank labels)."""
    return token.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥") or "∅"
