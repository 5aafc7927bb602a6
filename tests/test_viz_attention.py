"""Attention heatmap data preparation and validation (course_lib.viz.attention_data); widget tests live in
test_viz_attention_widget.py.

The widget only displays numbers, so "correct" means: the matrix on screen is exactly (bit for
bit, float32) the model's attention weights for the selected layer / head, with masked cells
NaN. Comparisons are exact (``atol=rtol=0``) unless a mean or a pooling is involved.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from course_lib.viz import attention_data as data
from tests.attention_samples import H, L, T, random_attentions, tokens

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
