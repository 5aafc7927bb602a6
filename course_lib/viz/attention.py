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
* static fallback: displaying the widget also saves its current head view as a plotly figure
  (see :meth:`AttentionWidget._repr_mimebundle_`); :func:`attention_figure` returns a ``go.Figure`` (``fig.show()`` renders in
  a saved notebook), :func:`save_attention_png` writes a PNG with matplotlib (also a button).

Everything ships with the Python packages (plotly's bundled widget JS via anywidget); nothing
is fetched from the internet. Data preparation and validation live in
:mod:`course_lib.viz.attention_data`, the figures in :mod:`course_lib.viz.attention_figures`.
"""

from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch

from course_lib.viz.attention_data import AttentionKind, AttentionMaps, from_model_output
from course_lib.viz.attention_figures import (
    MASKED_NOTE,
    _grid_figure,
    _head_figure,
    _maps,
    attention_figure,
    model_view_tiles,
    save_attention_png,
    z_matrix,
)

__all__ = ["AttentionWidget", "attention_figure", "attention_widget", "collect_attentions", "model_view_tiles",
           "save_attention_png", "show_attention", "z_matrix"]


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
        """The maps of the attention kind the widget shows now."""
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

    def _repr_mimebundle_(self, **kwargs):
        """The widget view plus the current head view as a static plotly figure.

        JupyterLab draws the live widget (its renderer ranks first); GitHub, nbviewer and nbconvert,
        which cannot run widgets, show the figure (``scripts/run_notebook.py`` adds its PNG).
        """
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle.update(pio.renderers["plotly_mimetype"].to_mimebundle(self.figure().to_dict()))
        return bundle

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
