"""course_lib.training: the shared loop actually optimises, records history, and checks its inputs."""

import pytest
import torch
from torch import nn

from course_lib.training import TrainHistory, smooth, train
from course_lib.viz.curves import plot_history


def _regression():
    torch.manual_seed(0)
    w_true = torch.randn(4, 1)
    x = torch.randn(256, 4)
    return x, x @ w_true, w_true


def test_train_fits_linear_regression_and_records_history():
    x, y, w_true = _regression()
    model = nn.Linear(4, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = lambda step: (x[(step * 32) % 256:][:32], y[(step * 32) % 256:][:32])
    loss_fn = lambda m, b: nn.functional.mse_loss(m(b[0]), b[1])
    evals = lambda m: {"mse": nn.functional.mse_loss(m(x), y).item()}
    h = train(model, batches, loss_fn, opt, steps=200, eval_fn=evals, eval_every=50,
              count_items=lambda b: len(b[0]), clip_grad_norm=None)
    assert h.steps == list(range(200)) and len(h.losses) == 200 and len(h.lrs) == 200
    assert h.losses[-1] < 1e-3 < h.losses[0]
    torch.testing.assert_close(model.weight.data.T, w_true, rtol=0, atol=1e-2)
    assert [s for s, _ in h.evals["mse"]] == [49, 99, 149, 199]
    assert h.items == 200 * 32 and h.items_per_second > 0
    assert not model.training  # left in eval mode


def test_train_accepts_an_iterator_and_calls_on_step():
    x, y, _ = _regression()
    model = nn.Linear(4, 1)
    seen = []
    train(model, iter([(x, y)] * 3), lambda m, b: nn.functional.mse_loss(m(b[0]), b[1]),
          torch.optim.SGD(model.parameters(), lr=0.01), steps=3, on_step=lambda s, v: seen.append(s))
    assert seen == [0, 1, 2]


def test_bad_arguments():
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="steps must be positive"):
        train(model, iter([]), lambda m, b: m(b).sum(), opt, steps=0)
    with pytest.raises(ValueError, match="scalar"):
        train(model, lambda s: torch.randn(3, 2), lambda m, b: m(b), opt, steps=1)
    with pytest.raises(ValueError, match="weight"):
        smooth([1.0], weight=1.0)
    with pytest.raises(ValueError, match="names"):
        plot_history(TrainHistory(), names=["a", "b"])


def test_smooth_and_plot():
    assert smooth([1.0, 0.0], weight=0.5) == [1.0, 0.5]
    h = TrainHistory(steps=[0, 1], losses=[2.0, 1.0])
    fig = plot_history(h, h, names=["a", "b"])
    assert len(fig.data) == 4
    assert (fig.data[0].x, fig.data[0].x0, fig.data[0].dx) == (None, 0, 1)  # evenly spaced steps: x0 + dx
    fig = plot_history(TrainHistory(steps=[0, 1, 5], losses=[2.718281828, 1.0, 0.5]))
    assert list(fig.data[0].x) == [0, 1, 5] and list(fig.data[0].y) == [2.718, 1.0, 0.5]  # 4 significant digits


def test_throughput_is_recorded_for_gpu_check(tmp_path, monkeypatch):
    import json

    out = tmp_path / "results.jsonl"
    monkeypatch.setenv("COURSE_RESULTS", str(out))
    model = nn.Linear(2, 1)
    train(model, lambda s: torch.randn(8, 2), lambda m, b: m(b).pow(2).mean(),
          torch.optim.SGD(model.parameters(), lr=0.1), steps=2, count_items=len, desc="demo", flops_per_item=12.0)
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["desc"] == "demo" and row["items"] == 16 and row["flops_per_item"] == 12.0
