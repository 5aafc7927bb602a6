"""The full fine-tuning memory account of chapter 05 (§9), on a small MLP: a training step's peak is
gradients + AdamW's two states (3 W) + two temporaries of the largest parameter, but only when the
gradients are None before the step; leftover gradients from a previous step hide one whole copy (W)."""

import torch
from torch import nn

from course_lib.profiling import peak_memory


def _model_and_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 256))
    x = torch.randn(8, 256)

    def step():
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.0, foreach=False)  # fresh: creates its state
        model(x).square().mean().backward()
        optimizer.step()
        model.zero_grad(set_to_none=True)
    return model, step


def _bytes(model):
    sizes = [p.numel() * p.element_size() for p in model.parameters()]
    return sum(sizes), max(sizes)


def test_fresh_step_peak_is_three_copies_plus_adamw_temporaries():
    model, step = _model_and_step()
    weights, largest = _bytes(model)
    _, peak = peak_memory(step)
    assert abs(peak - (3 * weights + 2 * largest)) < 0.01 * peak


def test_leftover_gradients_hide_one_copy():
    model, step = _model_and_step()
    weights, largest = _bytes(model)
    model(torch.randn(8, 256)).sum().backward()           # a previous step's gradients, never set to None
    _, peak = peak_memory(step)
    assert abs(peak - (2 * weights + 2 * largest)) < 0.01 * peak  # the bug chapter 05 used to print (1242 MiB)
