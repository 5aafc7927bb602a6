"""Attention heatmap widgets: a head view, a model view and a static fallback (plotly + ipywidgets).

One call in a chapter::

    from course_lib.viz.attention import show_attention
    w = show_attention(model, input_ids, tokens=tokens)   # runs model(..., output_attentions=True)
    display(w)

or, from attention maps you already have (one ``(B, H, T_q, T_k)`` tensor per layer)::

    w = attention_widget(out.attentions, tokens)                       # decoder-only / encoder-only
    w = attention_widget({"encoder self": (enc, src, None),            # encoder-decoder
                          "decoder self": (dec, tgt, None),
                          "cross": (cross, tgt, src)})
    w.select(layer=3, head=2); w.current_matrix()                       # programmatic state

* **head view** (tab 1): layer / head sliders, "mean of heads", a ``T_q × T_k`` heatmap with
  the tokens on both axes; hovering a cell shows query token, key token and weight.
* **model view** (tab 2): every layer × head as a small heatmap (each tile pooled to at most
  ``grid_cells`` cells and scaled to its own maximum); clicking a tile opens it in the head view.
* masked cells (causal attention, detected from the weights) are grey, not zero (white).
* static fallback: :func:`attention_figure` returns a ``go.Figure`` (``fig.show()`` renders in
  a saved notebook), :func:`save_attention_png` writes a PNG with matplotlib (also a button).

Everything ships with the Python packages (plotly's bundled widget JS via anywidget); nothing
is fetched from the internet. Data preparation and validation live in
:mod:`course_lib.viz.attention_data`.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch

from course_lib.viz.attention_data import (
    SELF,
    AttentionKind,
    AttentionMaps,
    axis_labels,
    from_model_output,
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


class AttentionWidget(widgets.VBox):
    """Head view + model view of :class:`AttentionMaps` (see the module docstring).

    Attributes for code and tests: ``kind``, ``layer``, ``head``, ``average`` (the controls),
    ``heatmap`` and ``grid`` (the two ``go.FigureWidget``), ``tabs``.
    """

    def __init__(self, maps: AttentionMaps, *, title: str | None = None, grid_cells: int = 16,
                 max_ticks: int = 40, png_dir: str | Path = "."):
        if not isinstance(grid_cells, int) or grid_cells < 1:
            raise ValueError(f"grid_cells must be a positive int, got {grid_cells!r}")
        if not isinstance(max_ticks, int) or max_ticks < 2:
            raise ValueError(f"max_ticks must be an int >= 2, got {max_ticks!r}")
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a string or None, got {type(title).__name__}")
        self.maps, self.grid_cells, self.max_ticks, self.png_dir = maps, grid_cells, max_ticks, Path(png_dir)
        self._quiet = False  # True while select() changes several controls
        first = maps[maps.names[0]]
        self.kind = widgets.Dropdown(options=maps.names, value=maps.names[0], description="类型 kind")
        self.kind.layout.display = None if len(maps.names) > 1 else "none"
        self.layer = widgets.IntSlider(0, 0, first.num_layers - 1, description="层 layer", continuous_update=False)
        self.head = widgets.IntSlider(0, 0, first.num_heads - 1, description="头 head", continuous_update=False)
        self.average = widgets.Checkbox(False, description="平均所有头 (mean of heads)", indent=False)
        self.png_button = widgets.Button(description="保存 PNG", icon="download", tooltip="save the heatmap as PNG")
        self.status = widgets.HTML()
        self.heatmap = go.FigureWidget(self._static(self.kind.value, 0, 0))
        self.grid = go.FigureWidget(_grid_figure(first, grid_cells))
        self.grid.data[0].on_click(self._on_grid_click)
        self.tabs = widgets.Tab(children=[
            widgets.VBox([widgets.HBox([self.layer, self.head]), widgets.HBox([self.average, self.png_button,
                                                                                self.status]), self.heatmap]),
            widgets.VBox([self.grid]),
        ], titles=("单头 head view", "全模型 model view"))
        header = widgets.HTML(f"<b>{html.escape(title)}</b> &nbsp; <small>{MASKED_NOTE}</small>" if title
                              else f"<small>{MASKED_NOTE}</small>")
        super().__init__([header, self.kind, self.tabs])
        for control in (self.layer, self.head, self.average):
            control.observe(self._redraw, names="value")
        self.kind.observe(self._change_kind, names="value")
        self.png_button.on_click(lambda _: self.save_png())

    # state -----------------------------------------------------------------------------------
    @property
    def current(self) -> AttentionKind:
        return self.maps[self.kind.value]

    def selection(self) -> tuple[str, int, int | None]:
        """``(kind, layer, head)`` shown now; ``head`` is None for the mean of heads."""
        return self.kind.value, self.layer.value, None if self.average.value else self.head.value

    def current_matrix(self) -> np.ndarray:
        """The ``(T_q, T_k)`` map shown in the head view (masked cells NaN)."""
        _, layer, head = self.selection()
        return self.current.matrix(layer, head)

    def select(self, layer: int | None = None, head: int | None = None, kind: str | None = None,
               average: bool | None = None) -> AttentionWidget:
        """Set the head view's kind / layer / head / mean-of-heads, as the controls would (returns self)."""
        maps = self.current if kind is None else self.maps[kind]  # raises ValueError naming the kinds
        if layer is not None and (not isinstance(layer, (int, np.integer)) or not 0 <= layer < maps.num_layers):
            raise ValueError(f"layer must be an int in [0, {maps.num_layers}), got {layer!r}")
        if head is not None and (not isinstance(head, (int, np.integer)) or not 0 <= head < maps.num_heads):
            raise ValueError(f"head must be an int in [0, {maps.num_heads}), got {head!r}")
        self._quiet = True  # one redraw for the whole change, not one per control
        try:
            if kind is not None:
                self.kind.value = kind
            if layer is not None:
                self.layer.value = int(layer)
            if head is not None:
                self.head.value = int(head)
            if average is not None:
                self.average.value = bool(average)
        finally:
            self._quiet = False
        self._redraw()
        return self

    def open_from_grid(self, layer: int, head: int) -> None:
        """What a click on a model-view tile does: show that layer and head in the head view."""
        self.select(layer=layer, head=head, average=False)
        self.tabs.selected_index = 0

    # outputs ---------------------------------------------------------------------------------
    def _static(self, kind_name: str, layer: int, head: int | None) -> go.Figure:
        return _head_figure(self.maps[kind_name], kind_name, layer, head, None, self.max_ticks)

    def figure(self) -> go.Figure:
        """The current head view as a static ``go.Figure`` (for ``fig.show()`` in saved notebooks)."""
        return self._static(*self.selection())

    def save_png(self, path: str | Path | None = None) -> Path:
        """Write the current head view as a PNG (matplotlib); default name in ``png_dir``."""
        kind_name, layer, head = self.selection()
        if path is None:
            slug = kind_name.replace(" ", "_")
            path = self.png_dir / f"attention_{slug}_L{layer}_{'mean' if head is None else f'H{head}'}.png"
        path = save_attention_png(self.maps, None, path, layer=layer, head=head, kind=kind_name)
        self.status.value = f"<small>saved {path}</small>"
        return path

    # callbacks -------------------------------------------------------------------------------
    def _redraw(self, _change=None) -> None:
        if self._quiet:
            return
        kind_name, layer, head = self.selection()
        self.head.disabled = head is None
        fresh = self._static(kind_name, layer, head)
        with self.heatmap.batch_update():
            trace = self.heatmap.data[0]
            trace.z, trace.x, trace.y = fresh.data[0].z, fresh.data[0].x, fresh.data[0].y
            self.heatmap.layout.title.text = fresh.layout.title.text
            self.heatmap.layout.xaxis.update(fresh.layout.xaxis)
            self.heatmap.layout.yaxis.update(fresh.layout.yaxis)
            self.heatmap.layout.width, self.heatmap.layout.height = fresh.layout.width, fresh.layout.height

    def _change_kind(self, _change) -> None:
        maps = self.current
        quiet, self._quiet = self._quiet, True
        try:  # clip the values first (they stay within the old range), then set the new range
            self.layer.value = min(self.layer.value, maps.num_layers - 1)
            self.head.value = min(self.head.value, maps.num_heads - 1)
            self.layer.max, self.head.max = maps.num_layers - 1, maps.num_heads - 1
        finally:
            self._quiet = quiet
        self._redraw()
        fresh = _grid_figure(maps, self.grid_cells)
        with self.grid.batch_update():
            trace = self.grid.data[0]
            trace.z, trace.x, trace.y = fresh.data[0].z, fresh.data[0].x, fresh.data[0].y
            self.grid.layout.update(fresh.layout)

    def _on_grid_click(self, trace, points, _selector) -> None:
        if not points.point_inds:
            return
        row, col = list(trace.y).index(points.ys[0]), list(trace.x).index(points.xs[0])
        c_q = len(trace.y) // self.current.num_layers
        c_k = len(trace.x) // self.current.num_heads
        self.open_from_grid(row // c_q, col // c_k)


def attention_widget(attentions, tokens=None, key_tokens=None, *, title: str | None = None,
                     causal: bool | None = None, batch_index: int = 0, grid_cells: int = 16,
                     max_ticks: int = 40, png_dir: str | Path = ".") -> AttentionWidget:
    """Build the head view + model view widget.

    ``attentions``: one ``(B, H, T_q, T_k)`` tensor per layer (``tokens`` label the queries,
    ``key_tokens`` the keys, default ``tokens``), or ``{kind: (attentions, query_tokens,
    key_tokens)}`` for encoder-decoder models (kinds ``"encoder self"``, ``"decoder self"``,
    ``"cross"``). ``causal=None`` detects a causal mask from the weights. Batch row
    ``batch_index`` is shown. Raises ``ValueError``/``TypeError`` on malformed input (see
    :func:`course_lib.viz.attention_data.prepare`).
    """
    maps = _maps(attentions, tokens, key_tokens, batch_index, causal)
    return AttentionWidget(maps, title=title, grid_cells=grid_cells, max_ticks=max_ticks, png_dir=png_dir)


def collect_attentions(model: torch.nn.Module, *args, tokens, key_tokens=None, **kwargs):
    """Run ``model(*args, output_attentions=True, **kwargs)`` without gradients; return its maps.

    Returns the ``attentions`` tuple, or for encoder-decoder outputs a dict of kinds whose
    ``tokens`` are the decoder input and ``key_tokens`` the encoder input (what
    :func:`attention_widget` takes).
    """
    if not callable(model):
        raise TypeError(f"model must be callable (an nn.Module), got {type(model).__name__}")
    with torch.no_grad():
        output = model(*args, output_attentions=True, **kwargs)
    return from_model_output(output, tokens, key_tokens)


def show_attention(model: torch.nn.Module, *args, tokens, key_tokens=None, title: str | None = None,
                   causal: bool | None = None, batch_index: int = 0, **kwargs) -> AttentionWidget:
    """Run a course model (or a transformers model) and return its attention widget.

    ``model(*args, output_attentions=True, **kwargs)`` runs under ``torch.no_grad``; its
    ``attentions`` (or ``encoder_attentions`` / ``decoder_attentions`` / ``cross_attentions``)
    feed :func:`attention_widget`. For encoder-decoder models ``tokens`` are the decoder input
    and ``key_tokens`` the encoder input. ``title``, ``causal`` and ``batch_index`` go to the
    widget, every other keyword to the model. Call ``model.eval()`` first (dropout would make
    rows not sum to 1, which warns).
    """
    attentions = collect_attentions(model, *args, tokens=tokens, key_tokens=key_tokens, **kwargs)
    if isinstance(attentions, dict):
        return attention_widget(attentions, title=title, causal=causal, batch_index=batch_index)
    return attention_widget(attentions, tokens, key_tokens, title=title, causal=causal, batch_index=batch_index)


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
