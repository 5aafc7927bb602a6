"""Figures behind the attention widgets: plotly heatmaps (head view, model-view mosaic) and PNGs.

Used by :mod:`course_lib.viz.attention` (the widgets) and usable alone: :func:`attention_figure`
is the static fallback for rendered notebooks, :func:`save_attention_png` writes a PNG with
matplotlib. Heatmap data travels as a plotly.js binary array (:func:`_plotly_z`): nested lists
are validated cell by cell (seconds at 512 tokens) and JSON has no NaN for masked cells.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from course_lib.viz.attention_data import (
    SELF,
    AttentionKind,
    AttentionMaps,
    axis_labels,
    pool,
    prepare,
    tick_positions,
)

MASKED_COLOR = "#c8c8c8"  # background shown through masked (NaN) cells
COLORSCALE = "Blues"      # 0 → white, so "no attention" and "masked" look different
MASKED_NOTE = "灰色 = 被掩码 (masked)"


def _maps(attentions, tokens, key_tokens, batch_index, causal) -> AttentionMaps:
    if isinstance(attentions, AttentionMaps):
        return attentions
    return prepare(attentions, tokens, key_tokens, batch_index=batch_index, causal=causal)


def _plotly_z(matrix: np.ndarray) -> dict:
    """``(T_q, T_k)`` map → plotly.js typed-array spec (base64 float32; NaN = masked cell, drawn as a gap).

    Nested lists would be validated cell by cell by plotly (seconds at 512 tokens) and JSON has
    no NaN; the binary spec is decoded by plotly.js ≥ 2.28 in the widget and in saved figures.
    """
    data = np.ascontiguousarray(matrix, dtype="<f4")
    return {"dtype": "f4", "bdata": base64.b64encode(data.tobytes()).decode("ascii"),
            "shape": f"{data.shape[0]}, {data.shape[1]}"}


def z_matrix(z: dict) -> np.ndarray:
    """Decode a heatmap's ``z`` written by :func:`_plotly_z` (tests read the widget's data back)."""
    rows, cols = (int(n) for n in z["shape"].split(","))
    return np.frombuffer(base64.b64decode(z["bdata"]), dtype="<f4").reshape(rows, cols)


def _heading(kind_name: str, layer: int, head: int | None) -> str:
    head_text = "mean of heads" if head is None else f"head {head}"
    prefix = "" if kind_name == SELF else f"{kind_name} · "
    return f"{prefix}layer {layer} · {head_text}"


def _side(n_q: int, n_k: int) -> tuple[int, int]:
    """Figure (width, height) in px: ~22 px per token, between 360 and 720 px a side."""
    height = int(np.clip(140 + 22 * n_q, 360, 720))
    width = int(np.clip(180 + 22 * n_k, 420, 820))
    return width, height


def _head_figure(kind: AttentionKind, kind_name: str, layer: int, head: int | None, title: str | None,
                 max_ticks: int) -> go.Figure:
    """The head-view heatmap of one map as a plotly figure."""
    rows, cols = axis_labels(kind.query_tokens), axis_labels(kind.key_tokens)
    heatmap = go.Heatmap(
        z=_plotly_z(kind.matrix(layer, head)), x=cols, y=rows, colorscale=COLORSCALE, zmin=0.0,
        hoverongaps=False, colorbar=dict(title="weight", thickness=12),
        hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>",
    )
    width, height = _side(len(rows), len(cols))
    fig = go.Figure(heatmap)
    fig.update_layout(
        title=dict(text=title or _heading(kind_name, layer, head), font=dict(size=14)),
        width=width, height=height, margin=dict(l=10, r=10, t=50, b=10), plot_bgcolor=MASKED_COLOR,
    )
    _set_ticks(fig, rows, cols, max_ticks)
    return fig


def _tick_text(label: str, width: int = 12) -> str:
    """The token part of an ``"i·token"`` label, cut to ``width`` characters (hover shows it whole)."""
    token = label.split("·", 1)[1]
    return token if len(token) <= width else token[:width - 1] + "…"


def _set_ticks(fig, rows: list[str], cols: list[str], max_ticks: int) -> None:
    """At most ``max_ticks`` token labels per axis (long inputs stay readable); queries top to bottom."""
    ys, xs = tick_positions(len(rows), max_ticks), tick_positions(len(cols), max_ticks)
    fig.update_yaxes(autorange="reversed", title="query", tickmode="array",
                     tickvals=[rows[i] for i in ys], ticktext=[_tick_text(rows[i]) for i in ys])
    fig.update_xaxes(title="key", tickangle=-60, tickmode="array", side="bottom",
                     tickvals=[cols[i] for i in xs], ticktext=[_tick_text(cols[i]) for i in xs])


def model_view_tiles(kind: AttentionKind, grid_cells: int) -> np.ndarray:
    """``(L·c_q, H·c_k)`` mosaic of every layer × head, each pooled to ≤ grid_cells² and scaled to max 1."""
    tiles = np.stack([pool(kind.weights[layer], grid_cells) for layer in range(kind.num_layers)])  # (L, H, c_q, c_k)
    peak = np.nanmax(tiles, axis=(-2, -1), keepdims=True)
    tiles = tiles / np.where(peak > 0, peak, 1.0)
    n_layers, n_heads, c_q, c_k = tiles.shape
    return tiles.transpose(0, 2, 1, 3).reshape(n_layers * c_q, n_heads * c_k)  # (L·c_q, H·c_k)


def _grid_figure(kind: AttentionKind, grid_cells: int) -> go.Figure:
    mosaic = model_view_tiles(kind, grid_cells)
    n_layers, n_heads = kind.num_layers, kind.num_heads
    c_q, c_k = mosaic.shape[0] // n_layers, mosaic.shape[1] // n_heads
    rows = [f"layer {r // c_q} · row {r % c_q}" for r in range(mosaic.shape[0])]
    cols = [f"head {c // c_k} · col {c % c_k}" for c in range(mosaic.shape[1])]
    fig = go.Figure(go.Heatmap(
        z=_plotly_z(mosaic), x=cols, y=rows, colorscale=COLORSCALE, zmin=0.0, zmax=1.0, showscale=False,
        hoverongaps=False, hovertemplate="%{y}<br>%{x}<br>click to open<extra></extra>",
    ))
    lines = [dict(type="line", xref="x", yref="paper", x0=h * c_k - 0.5, x1=h * c_k - 0.5, y0=0, y1=1,
                  line=dict(color="white", width=3)) for h in range(1, n_heads)]
    lines += [dict(type="line", xref="paper", yref="y", y0=layer * c_q - 0.5, y1=layer * c_q - 0.5, x0=0, x1=1,
                   line=dict(color="white", width=3)) for layer in range(1, n_layers)]
    tile_px = int(np.clip(560 / max(n_layers, n_heads), 28, 70))
    fig.update_layout(
        shapes=lines, width=140 + tile_px * n_heads, height=110 + tile_px * n_layers,
        margin=dict(l=10, r=10, t=60, b=10), plot_bgcolor=MASKED_COLOR,
        title=dict(text="model view: layers × heads (each tile scaled to its max) — click a tile", font=dict(size=13)),
    )
    fig.update_yaxes(autorange="reversed", tickmode="array", showgrid=False,
                     tickvals=[rows[layer * c_q + c_q // 2] for layer in range(n_layers)],
                     ticktext=[f"L{layer}" for layer in range(n_layers)])
    fig.update_xaxes(side="top", tickmode="array", showgrid=False,
                     tickvals=[cols[h * c_k + c_k // 2] for h in range(n_heads)],
                     ticktext=[f"H{h}" for h in range(n_heads)])
    return fig


def _kind_of(maps: AttentionMaps, kind: str | None) -> tuple[str, AttentionKind]:
    if kind is None:
        if len(maps.names) > 1:
            raise ValueError(f"these maps hold several kinds {maps.names}: pass kind=")
        kind = maps.names[0]
    return kind, maps[kind]


def attention_figure(attentions, tokens=None, layer: int = 0, head: int | None = 0, key_tokens=None, *,
                     kind: str | None = None, batch_index: int = 0, causal: bool | None = None,
                     title: str | None = None, max_ticks: int = 40) -> go.Figure:
    """Static heatmap of one ``layer`` / ``head`` (``head=None``: mean of heads) as a ``go.Figure``.

    Same inputs as :func:`attention_widget`; ``kind`` picks e.g. ``"cross"`` from a dict of kinds.
    """
    name, maps = _kind_of(_maps(attentions, tokens, key_tokens, batch_index, causal), kind)
    return _head_figure(maps, name, layer, head, title, max_ticks)


def save_attention_png(attentions, tokens, path: str | Path, layer: int = 0, head: int | None = 0,
                       key_tokens=None, *, kind: str | None = None, batch_index: int = 0,
                       causal: bool | None = None, title: str | None = None, max_ticks: int = 40,
                       dpi: int = 150) -> Path:
    """Write the heatmap of one ``layer`` / ``head`` as a PNG with matplotlib (masked cells grey)."""
    from course_lib.viz.static import matplotlib_cjk, save

    name, maps = _kind_of(_maps(attentions, tokens, key_tokens, batch_index, causal), kind)
    matrix = maps.matrix(layer, head)
    plt = matplotlib_cjk()
    cmap = plt.get_cmap(COLORSCALE).with_extremes(bad=MASKED_COLOR)
    n_q, n_k = matrix.shape
    fig, ax = plt.subplots(figsize=(min(2.5 + 0.3 * n_k, 12), min(2 + 0.3 * n_q, 11)))
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=0.0, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="weight")
    rows, cols = tick_positions(n_q, max_ticks), tick_positions(n_k, max_ticks)
    labels = axis_labels
    ax.set_yticks(rows, [labels(maps.query_tokens)[i].split("·", 1)[1] for i in rows])
    ax.set_xticks(cols, [labels(maps.key_tokens)[i].split("·", 1)[1] for i in cols], rotation=60, ha="right")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(title or _heading(name, layer, head))
    return save(fig, path, dpi=dpi)
