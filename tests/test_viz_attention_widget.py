"""Attention heatmap widget state, static fallback and model outputs (course_lib.viz.attention).

The widget only displays numbers, so "correct" means: the matrix on screen is exactly (bit for
bit, float32) the model's attention weights for the selected layer / head, with masked cells
NaN. Comparisons are exact (``atol=rtol=0``) unless a mean or a pooling is involved.
"""

from __future__ import annotations

import types

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from course_lib.attention import causal_mask, scaled_dot_product_attention
from course_lib.viz import attention_data as data
from course_lib.viz.attention import (
    AttentionWidget,
    attention_figure,
    attention_widget,
    collect_attentions,
    model_view_tiles,
    save_attention_png,
    show_attention,
    z_matrix,
)
from tests.attention_samples import H, L, T, assert_same_map, random_attentions, tokens

# widget ------------------------------------------------------------------------------------------

def test_selecting_layer_3_head_2_shows_exactly_that_matrix():
    atts = random_attentions(causal=True)
    w = attention_widget(atts, tokens(T), title="demo")
    assert isinstance(w, AttentionWidget) and isinstance(w.heatmap, go.FigureWidget)
    w.select(layer=3, head=2)
    assert (w.layer.value, w.head.value) == (3, 2) and w.selection() == ("self", 3, 2)
    assert_same_map(w.current_matrix(), atts[3][0, 2], causal=True)
    assert_same_map(z_matrix(w.heatmap.data[0].z), atts[3][0, 2], causal=True)  # what the browser gets
    assert "layer 3 · head 2" in w.heatmap.layout.title.text
    w.layer.value = 1  # moving the slider redraws too
    assert_same_map(z_matrix(w.heatmap.data[0].z), atts[1][0, 2], causal=True)


def test_mean_of_heads_and_hover_labels():
    atts = random_attentions()
    w = attention_widget(atts, ["a", "b", "a", "c", "d", "e"]).select(layer=2, average=True)
    torch.testing.assert_close(torch.tensor(z_matrix(w.heatmap.data[0].z)), atts[2][0].mean(0),
                               rtol=1e-6, atol=1e-7)  # float32 mean of 3 values: ~1 ulp
    assert w.selection() == ("self", 2, None) and w.head.disabled
    assert list(w.heatmap.data[0].y) == ["0·a", "1·b", "2·a", "3·c", "4·d", "5·e"]
    assert "query %{y}" in w.heatmap.data[0].hovertemplate and "weight %{z" in w.heatmap.data[0].hovertemplate
    long_token = attention_widget(atts, ["a", "b", "a", "c", "d", "supercalifragilistic"])
    assert list(long_token.heatmap.layout.xaxis.ticktext) == ["a", "b", "a", "c", "d", "supercalifr…"]


def encoder_decoder_maps():
    src, tgt = tokens(7, "src"), tokens(4, "tgt")
    return src, tgt, {
        "encoder self": (random_attentions(layers=2, t_q=7), src, None),
        "decoder self": (random_attentions(layers=3, t_q=4, causal=True), tgt, None),
        "cross": (random_attentions(layers=3, t_q=4, t_k=7), tgt, src),
    }


def test_encoder_decoder_kinds_switch_shape_and_layer_range():
    src, tgt, kinds = encoder_decoder_maps()
    w = attention_widget(kinds)
    assert w.kind.options == ("encoder self", "decoder self", "cross") and w.layer.max == 1
    w.select(kind="cross", layer=2, head=1)
    assert w.layer.max == 2 and z_matrix(w.heatmap.data[0].z).shape == (4, 7)
    assert_same_map(w.current_matrix(), kinds["cross"][0][2][0, 1], causal=False)
    assert list(w.heatmap.data[0].x) == data.axis_labels(src) and list(w.heatmap.data[0].y) == data.axis_labels(tgt)
    w.select(kind="decoder self")
    assert_same_map(z_matrix(w.heatmap.data[0].z), kinds["decoder self"][0][2][0, 1], causal=True)
    w.select(kind="encoder self")
    assert w.layer.value == 1  # clipped to the encoder's 2 layers
    with pytest.raises(ValueError, match="kind must be one of"):
        w.select(kind="decoder")


def test_model_view_tiles_and_click_opens_the_head():
    atts = random_attentions(causal=True)
    w = attention_widget(atts, tokens(T), grid_cells=3)
    mosaic = z_matrix(w.grid.data[0].z)
    assert mosaic.shape == (L * 3, H * 3)
    np.testing.assert_array_equal(mosaic, model_view_tiles(w.current, 3))
    tile = data.pool(w.current.weights[2, 1], 3)
    np.testing.assert_allclose(mosaic[6:9, 3:6], tile / np.nanmax(tile), rtol=1e-6)
    trace = w.grid.data[0]
    w.tabs.selected_index = 1
    click = types.SimpleNamespace(point_inds=[[7, 4]], xs=[trace.x[4]], ys=[trace.y[7]])
    w._on_grid_click(trace, click, None)  # what plotly calls on a click in the browser
    assert w.selection() == ("self", 2, 1) and w.tabs.selected_index == 0
    assert_same_map(z_matrix(w.heatmap.data[0].z), atts[2][0, 1], causal=True)


def test_select_redraws_once_and_the_title_is_escaped(monkeypatch):
    w = attention_widget(random_attentions(), tokens(T), title="<b>x</b> & y")
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in w.children[0].value
    calls = []
    original = w._static
    monkeypatch.setattr(w, "_static", lambda *args: calls.append(args) or original(*args))
    w.select(layer=2, head=1, average=False)
    assert calls == [("self", 2, 1)]


def test_widget_rejects_bad_selection_and_options():
    w = attention_widget(random_attentions(), tokens(T))
    with pytest.raises(ValueError, match=r"layer must be an int in \[0, 4\)"):
        w.select(layer=4)
    with pytest.raises(ValueError, match=r"head must be an int in \[0, 3\)"):
        w.select(head=-1)
    with pytest.raises(ValueError, match="grid_cells must be a positive int"):
        attention_widget(random_attentions(), tokens(T), grid_cells=0)
    with pytest.raises(ValueError, match="max_ticks must be an int >= 2"):
        attention_widget(random_attentions(), tokens(T), max_ticks=1)
    with pytest.raises(TypeError, match="title must be a string or None"):
        attention_widget(random_attentions(), tokens(T), title=3)
    with pytest.raises(ValueError, match=r"batch_index must be an int in \[0, 2\)"):
        attention_widget(random_attentions(), tokens(T), batch_index=-1)


def test_long_inputs_thin_labels_and_pool_the_model_view():
    atts = random_attentions(layers=2, heads=2, t_q=512, batch=1, causal=True)
    w = attention_widget(atts, tokens(512), max_ticks=32, grid_cells=16).select(layer=1, head=1)
    assert len(w.heatmap.layout.yaxis.tickvals) <= 32 and len(w.heatmap.layout.xaxis.tickvals) <= 32
    assert z_matrix(w.heatmap.data[0].z).shape == (512, 512)
    assert z_matrix(w.grid.data[0].z).shape == (2 * 16, 2 * 16)
    assert w.heatmap.layout.height <= 720


# static fallback --------------------------------------------------------------------------------

def test_attention_figure_and_png(tmp_path):
    src, tgt, kinds = encoder_decoder_maps()
    fig = attention_figure(kinds, layer=1, head=0, kind="cross")
    assert isinstance(fig, go.Figure) and not isinstance(fig, go.FigureWidget)
    np.testing.assert_array_equal(z_matrix(fig.data[0].z), kinds["cross"][0][1][0, 0].numpy())
    assert fig.to_json()  # serialisable for the plotly_mimetype renderer
    with pytest.raises(ValueError, match="several kinds"):
        attention_figure(kinds)
    path = save_attention_png(random_attentions(causal=True), tokens(T), tmp_path / "a.png", layer=1, head=None)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    w = attention_widget(kinds, png_dir=tmp_path).select(kind="cross", layer=2, head=1)
    saved = w.save_png()
    assert saved.name == "attention_cross_L2_H1.png" and saved.exists() and "saved" in w.status.value
    np.testing.assert_array_equal(z_matrix(w.figure().data[0].z), z_matrix(w.heatmap.data[0].z))


# model outputs ---------------------------------------------------------------------------------

class TinyCourseModel(torch.nn.Module):
    """Follows the course convention: forward(..., output_attentions=False) -> object with .attentions."""

    def __init__(self, layers=2, heads=2, dim=8, vocab=20):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, heads * dim)
        self.qk = torch.nn.ModuleList(torch.nn.Linear(heads * dim, 2 * heads * dim) for _ in range(layers))
        self.heads, self.dim = heads, dim

    def forward(self, ids, output_attentions=False):
        x = self.embed(ids)  # (B, T, C)
        b, t, _ = x.shape
        maps = []
        for qk in self.qk:
            q, k = qk(x).view(b, t, 2, self.heads, self.dim).permute(2, 0, 3, 1, 4)  # (B, H, T, D) each
            y, weights = scaled_dot_product_attention(q, k, k, mask=causal_mask(t))
            x = x + y.transpose(1, 2).reshape(b, t, -1)
            maps.append(weights)
        return types.SimpleNamespace(logits=x, attentions=tuple(maps) if output_attentions else None)


def test_show_attention_on_a_course_model():
    model = TinyCourseModel().eval()
    ids = torch.tensor([[1, 5, 7, 3, 2]])
    w = show_attention(model, ids, tokens=tokens(5), title="tiny")
    expected = model(ids, output_attentions=True).attentions
    assert w.current.causal and w.current.num_layers == 2
    w.select(layer=1, head=1)
    assert_same_map(w.current_matrix(), expected[1][0, 1], causal=True)
    with pytest.raises(ValueError, match="has no attention maps"):
        show_attention(lambda ids, output_attentions: types.SimpleNamespace(logits=ids), ids, tokens=tokens(5))
    with pytest.raises(TypeError, match="model must be callable"):
        collect_attentions("model", ids, tokens=tokens(5))


def test_show_attention_on_transformers_models():
    """HF outputs use the same field names; eager attention returns the weights (SDPA may not)."""
    from transformers import BertConfig, BertModel, T5Config, T5Model

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=4,
                                intermediate_size=32, attn_implementation="eager"), add_pooling_layer=False).eval()
    ids = torch.tensor([[2, 7, 9, 4, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    w = show_attention(bert, ids, tokens=tokens(6), attention_mask=mask)  # kwargs reach the model
    with torch.no_grad():
        expected = bert(ids, attention_mask=mask, output_attentions=True).attentions
    w.select(layer=3, head=2)
    assert not w.current.causal
    assert_same_map(w.current_matrix(), expected[3][0, 2], causal=False)
    assert w.current_matrix()[:, 5].max() < 1e-6  # the padded key gets no attention

    t5 = T5Model(T5Config(vocab_size=40, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_decoder_layers=3,
                          num_heads=2, attn_implementation="eager")).eval()
    src, tgt = torch.tensor([[5, 6, 7, 8, 1]]), torch.tensor([[0, 9, 10]])
    w = show_attention(t5, input_ids=src, decoder_input_ids=tgt, tokens=tokens(3, "tgt"), key_tokens=tokens(5, "src"))
    with torch.no_grad():
        out = t5(input_ids=src, decoder_input_ids=tgt, output_attentions=True)
    assert w.kind.options == ("encoder self", "decoder self", "cross")
    assert w.maps["decoder self"].causal and not w.maps["cross"].causal
    w.select(kind="cross", layer=2, head=1)
    assert_same_map(w.current_matrix(), out.cross_attentions[2][0, 1], causal=False)
    assert w.current.query_tokens == tokens(3, "tgt") and w.current.key_tokens == tokens(5, "src")
    sdpa = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=32, attn_implementation="sdpa"), add_pooling_layer=False).eval()
    with pytest.raises(ValueError, match="holds no attention weights .* attn_implementation='eager'"):
        show_attention(sdpa, ids, tokens=tokens(6))
    with pytest.raises(ValueError, match="needs tokens= .* and key_tokens="):
        show_attention(t5, input_ids=src, decoder_input_ids=tgt, tokens=tokens(3))
