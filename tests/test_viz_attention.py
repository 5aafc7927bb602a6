"""Attention heatmap widgets: data preparation, validation, widget state, model outputs.

The widget only displays numbers, so "correct" means: the matrix on screen is exactly (bit for
bit, float32) the model's attention weights for the selected layer / head, with masked cells
NaN. Comparisons are exact (``atol=rtol=0``) unless a mean or a pooling is involved.
"""

from __future__ import annotations

import types
import warnings

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

L, H, T = 4, 3, 6


def random_attentions(layers=L, heads=H, t_q=T, t_k=None, batch=2, causal=False):
    """Per-layer softmax weights from the course's own attention, (B, H, T_q, T_k) each."""
    t_k = t_q if t_k is None else t_k
    mask = causal_mask(t_q, t_k) if causal else None
    out = []
    for _ in range(layers):
        q, k = torch.randn(batch, heads, t_q, 8), torch.randn(batch, heads, t_k, 8)
        out.append(scaled_dot_product_attention(q, k, k, mask=mask)[1])
    return tuple(out)


def tokens(n, prefix="t"):
    return [f"{prefix}{i}" for i in range(n)]


def assert_same_map(shown: np.ndarray, expected: torch.Tensor, causal: bool):
    """Exact equality; with a causal mask the upper triangle must be NaN (masked), not 0."""
    expected = expected.detach().numpy().copy()
    if causal:
        t_q, t_k = expected.shape
        expected[data.causal_upper(t_q, t_k)] = np.nan
    np.testing.assert_array_equal(shown, expected)


# data preparation ------------------------------------------------------------------------------

def test_prepare_stacks_layers_for_the_chosen_batch_row():
    atts = random_attentions()
    maps = data.prepare(atts, tokens(T), batch_index=1)
    kind = maps["self"]
    assert kind.weights.shape == (L, H, T, T) and kind.weights.dtype == np.float32
    np.testing.assert_array_equal(kind.weights, torch.stack(atts)[:, 1].numpy())
    assert not kind.causal and not np.isnan(kind.weights).any()


def test_causal_mask_is_detected_and_rendered_as_masked_not_zero():
    atts = random_attentions(causal=True)
    kind = data.prepare(atts, tokens(T))["self"]
    assert kind.causal
    upper = data.causal_upper(T, T)
    assert np.isnan(kind.weights[..., upper]).all()
    np.testing.assert_array_equal(kind.weights[..., ~upper], torch.stack(atts)[:, 0].numpy()[..., ~upper])
    # the head mean keeps the mask
    assert np.isnan(kind.matrix(0, None)[upper]).all()


def test_causal_with_cache_offset_and_forced_flags():
    atts = random_attentions(t_q=3, t_k=7, causal=True)  # decoding 3 new tokens after 4 cached ones
    kind = data.prepare(atts, tokens(3), tokens(7, "k"))["self"]
    assert kind.causal and np.isnan(kind.weights[0, 0, 0, 5:]).all() and not np.isnan(kind.weights[0, 0, 0, :5]).any()
    shown = data.prepare(atts, tokens(3), tokens(7, "k"), causal=False)["self"]
    assert not np.isnan(shown.weights).any()
    with pytest.warns(UserWarning, match="hides non-zero weights"):
        data.prepare(random_attentions(), tokens(T), causal=True)
    with pytest.raises(TypeError, match="causal must be True, False or None"):
        data.prepare(atts, tokens(3), tokens(7), causal="yes")


def test_rectangular_cross_attention_needs_key_tokens():
    atts = random_attentions(t_q=4, t_k=9)
    kind = data.prepare(atts, tokens(4), tokens(9, "src"))["self"]
    assert kind.weights.shape == (L, H, 4, 9) and not kind.causal
    assert kind.key_tokens == tokens(9, "src")
    with pytest.raises(ValueError, match="rectangular .* pass key_tokens"):
        data.prepare(atts, tokens(4))


@pytest.mark.parametrize(
    ("attentions", "toks", "keys", "error", "match"),
    [
        (random_attentions(), tokens(T + 1), None, ValueError, r"tokens has 7 tokens .* T_q=6"),
        (random_attentions(t_k=8), tokens(T), tokens(5), ValueError, r"key_tokens has 5 tokens .* T_k=8"),
        (tuple(a[0] for a in random_attentions()), tokens(T), None, ValueError, r"attentions\[0\] must have rank 4"),
        (random_attentions()[:1] + (torch.full((2, H, T, T), float("nan")),), tokens(T), None, ValueError,
         "NaN or inf"),
        (tuple(-a for a in random_attentions()), tokens(T), None, ValueError, "negative weights"),
        ((), tokens(T), None, ValueError, "attentions is empty"),
        (torch.stack(random_attentions()), tokens(T), None, TypeError, "must be a list/tuple"),
        ((None, None), tokens(T), None, ValueError, "attn_implementation='eager'"),
        ((torch.ones(1, H, T, T, dtype=torch.long),), tokens(T), None, TypeError, "floating-point"),
        (("weights",), tokens(T), None, TypeError, r"attentions\[0\] must be a torch.Tensor"),
        (random_attentions()[:1] + random_attentions(t_q=5), tokens(T), None, ValueError,
         r"attentions\[1\] has shape \(2, 3, 5, 5\)"),
        (random_attentions(), list(range(T)), None, TypeError, "must hold strings"),
        (random_attentions(), "a b c d e f", None, TypeError, "must be a list of token strings"),
        (random_attentions(), None, None, ValueError, "tokens is required"),
    ],
)
def test_bad_input_names_the_problem(attentions, toks, keys, error, match):
    with pytest.raises(error, match=match):
        data.prepare(attentions, toks, keys)


def test_bad_batch_index_and_dict_entries():
    atts = random_attentions()
    with pytest.raises(ValueError, match=r"batch_index must be an int in \[0, 2\)"):
        data.prepare(atts, tokens(T), batch_index=2)
    with pytest.raises(ValueError, match=r"must be \(attentions, query_tokens, key_tokens\)"):
        data.prepare({"cross": (atts, tokens(T))})
    with pytest.raises(ValueError, match="give the tokens inside it"):
        data.prepare({"cross": (atts, tokens(T), None)}, tokens(T))
    with pytest.raises(ValueError, match="dict is empty"):
        data.prepare({})
    with pytest.raises(ValueError, match=r"kind must be one of \['self'\]"):
        data.prepare(atts, tokens(T))["cross"]
    kind = data.prepare(atts, tokens(T))["self"]
    with pytest.raises(ValueError, match=r"layer must be an int in \[0, 4\)"):
        kind.matrix(4, 0)
    with pytest.raises(ValueError, match=r"head must be an int in \[0, 3\) or None"):
        kind.matrix(0, 3)


def test_rows_that_are_not_a_softmax_warn_but_fully_masked_rows_do_not():
    atts = random_attentions()
    with pytest.warns(UserWarning, match=r"rows do not sum to 1 .* model.eval\(\)"):
        data.prepare(tuple(a * 1.1 for a in atts), tokens(T))
    zero_row = [a.clone() for a in atts]
    zero_row[0][:, :, 2] = 0.0  # a padding query: every key masked, course attention gives zeros
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.prepare(tuple(zero_row), tokens(T))


def test_pool_averages_blocks_and_ignores_masked_cells():
    matrix = np.arange(36, dtype=np.float32).reshape(6, 6)
    np.testing.assert_allclose(data.pool(matrix, 3), matrix.reshape(3, 2, 3, 2).mean(axis=(1, 3)), rtol=1e-6)
    masked = matrix.copy()
    masked[data.causal_upper(6, 6)] = np.nan
    pooled = data.pool(masked, 3)
    assert np.isnan(pooled[0, 1]) and np.isnan(pooled[0, 2])  # fully masked blocks stay masked
    assert pooled[0, 0] == pytest.approx((0 + 6 + 7) / 3)      # only the 3 unmasked cells count
    assert data.pool(matrix, 10).shape == (6, 6)


def test_labels_are_unique_visible_and_thinned_for_long_inputs():
    labels = data.axis_labels(["the", " ", "the", "\n", ""])
    assert labels == ["0·the", "1·␣", "2·the", "3·⏎", "4·∅"] and len(set(labels)) == 5
    ticks = data.tick_positions(512, 40)
    assert len(ticks) <= 40 and ticks[0] == 0 and ticks[-1] >= 512 - 13
    assert data.tick_positions(10, 40) == list(range(10))


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
