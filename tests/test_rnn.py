"""Our LSTM against ``torch.nn.LSTM`` with the same weights (names are identical: the name table is the identity).

Tolerance: fp32 ``assert_close`` defaults (rtol 1.3e-6, atol 1e-5). Both compute the same gate sums in
fp32; only the order of the additions differs (torch fuses the two matmuls), so differences stay at a few ulp
per step and do not grow much over 20 steps of squashing nonlinearities.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.models.rnn import LSTM, LSTMLanguageModel, LSTMLMConfig, lstm_cell


def _pair(d_in: int, hidden: int, layers: int) -> tuple[LSTM, torch.nn.LSTM]:
    ref = torch.nn.LSTM(d_in, hidden, layers, batch_first=True)
    ours = LSTM(d_in, hidden, layers)
    ours.load_state_dict(ref.state_dict())  # same names: weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ...
    return ours, ref


def test_state_dict_names_match_torch():
    ours, ref = _pair(5, 7, 3)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert all(a.shape == b.shape for a, b in zip(ours.state_dict().values(), ref.state_dict().values()))


@settings(max_examples=15, deadline=None)
@given(b=st.integers(1, 3), t=st.integers(1, 20), d_in=st.integers(1, 9), hidden=st.integers(1, 12),
       layers=st.integers(1, 3), with_state=st.booleans())
def test_lstm_equals_torch(b, t, d_in, hidden, layers, with_state):
    torch.manual_seed(b * 1000 + t)
    ours, ref = _pair(d_in, hidden, layers)
    x = torch.randn(b, t, d_in)
    state = (torch.randn(layers, b, hidden), torch.randn(layers, b, hidden)) if with_state else None
    out, (h, c) = ours(x, state)
    out_ref, (h_ref, c_ref) = ref(x, state)
    torch.testing.assert_close(out, out_ref)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)


def test_lstm_cell_equals_torch_lstm_cell():
    cell = torch.nn.LSTMCell(6, 8)
    x, h, c = torch.randn(4, 6), torch.randn(4, 8), torch.randn(4, 8)
    ours = lstm_cell(x, (h, c), cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    for a, b in zip(ours, cell(x, (h, c))):
        torch.testing.assert_close(a, b)


def test_gradients_equal_torch():
    ours, ref = _pair(4, 6, 2)
    x = torch.randn(2, 9, 4)
    ours(x)[0].pow(2).sum().backward()
    ref(x)[0].pow(2).sum().backward()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m, name=name: f"{name}: {m}")


def test_language_model_state_carries_over():
    """Running a sequence in two pieces with the state passed on equals one pass."""
    model = LSTMLanguageModel(LSTMLMConfig(vocab_size=30, embed_dim=8, hidden_size=16, num_layers=2))
    ids = torch.randint(0, 30, (2, 12))
    full, _ = model(ids)
    first, state = model(ids[:, :5])
    second, _ = model(ids[:, 5:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), full)
    assert model.loss(ids).dim() == 0
    out = model.generate(ids[:, :3], max_new_tokens=4, temperature=0)
    assert out.shape == (2, 7) and torch.equal(out[:, :3], ids[:, :3])


def test_bad_input():
    model = LSTMLanguageModel(LSTMLMConfig(vocab_size=10, embed_dim=4, hidden_size=4))
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 10\)"):
        model(torch.tensor([[1, 10]]))
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 10\)"):
        model(torch.tensor([[-1, 2]]))
    with pytest.raises(TypeError, match="input_ids must be an integer"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"input_ids must have shape \(B, T\)"):
        model(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="temperature must be a number >= 0"):
        model.generate(torch.tensor([[1]]), 2, temperature=-1.0)
    lstm = LSTM(3, 4)
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, 3\)"):
        lstm(torch.zeros(2, 5, 4))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        lstm(torch.zeros(2, 5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"state \(h_0, c_0\) must each have shape \(1, 2, 4\)"):
        lstm(torch.zeros(2, 5, 3), (torch.zeros(1, 1, 4), torch.zeros(1, 1, 4)))
    with pytest.raises(ValueError, match="LSTM.hidden_size must be a positive int, got 0"):
        LSTM(3, 0)
