"""A small training loop shared by every chapter that trains something.

It does what each chapter would otherwise rewrite: move batches to the device, step the
optimizer (and an optional LR scheduler), clip gradients, show a ``tqdm.auto`` progress bar,
keep a loss history, and optionally evaluate every few steps. The chapter supplies the model,
the batches and the loss, so the interesting part stays in the notebook.

    history = train(model, batches, loss_fn, optimizer, steps=cfg.pick(200, 5000))
    plot_history(history)            # course_lib.viz.curves
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm


@dataclass
class TrainHistory:
    """What :func:`train` records: losses and learning rates per step, evaluations, time and items."""
    steps: list[int] = field(default_factory=list)    # step index of each recorded loss
    losses: list[float] = field(default_factory=list)  # training loss at that step
    lrs: list[float] = field(default_factory=list)     # learning rate at that step
    evals: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # name -> [(step, value)]
    seconds: float = 0.0                               # wall-clock time of the whole loop
    items: int = 0                                     # tokens (or examples) seen, from ``count_items``

    @property
    def items_per_second(self) -> float:
        """Throughput over the run (items counted by ``count_items``)."""
        return self.items / self.seconds if self.seconds else 0.0


def _to_device(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def train(
    model: nn.Module,
    batches: Iterator | Callable[[int], object],
    loss_fn: Callable[[nn.Module, object], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    steps: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    clip_grad_norm: float | None = 1.0,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int = 0,
    count_items: Callable[[object], int] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    desc: str = "train",
    flops_per_item: float | None = None,
) -> TrainHistory:
    """Run ``steps`` optimisation steps and return the :class:`TrainHistory`.

    ``batches`` is an iterator of batches or a function ``step -> batch``. ``loss_fn(model, batch)``
    returns a scalar loss. ``eval_fn(model)`` (run under ``torch.no_grad`` in eval mode every
    ``eval_every`` steps and at the end) returns named metrics. ``on_step(step, loss)`` is called
    after every step (e.g. to update a live plot). When the environment variable ``COURSE_RESULTS``
    names a file, a JSON line with the throughput (and ``flops_per_item`` ≈ 6 × parameters for a
    language model, for model-FLOP utilisation) is appended to it: ``scripts/gpu_check.sh`` uses this.
    """
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    if eval_every < 0:
        raise ValueError(f"eval_every must be >= 0, got {eval_every}")
    device = next(model.parameters()).device
    history = TrainHistory()
    if callable(batches):
        get_batch = batches
    else:
        iterator = iter(batches)
        get_batch = lambda _step: next(iterator)
    model.train()
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc)
    for step in bar:
        batch = _to_device(get_batch(step), device)
        loss = loss_fn(model, batch)
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        value = loss.item()
        history.steps.append(step)
        history.losses.append(value)
        history.lrs.append(optimizer.param_groups[0]["lr"])
        if count_items is not None:
            history.items += count_items(batch)
        if on_step is not None:
            on_step(step, value)
        bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        last = step == steps - 1
        if eval_fn is not None and ((eval_every and (step + 1) % eval_every == 0) or last):
            model.eval()
            with torch.no_grad():
                for name, metric in eval_fn(model).items():
                    history.evals.setdefault(name, []).append((step, float(metric)))
            model.train()
    history.seconds = time.perf_counter() - start
    model.eval()
    _record(history, desc, device, flops_per_item)
    return history


def _record(history: TrainHistory, desc: str, device: torch.device, flops_per_item: float | None) -> None:
    path = os.environ.get("COURSE_RESULTS")
    if not path:
        return
    row = {"desc": desc, "device": str(device), "steps": len(history.steps), "seconds": round(history.seconds, 3),
           "items": history.items, "items_per_second": round(history.items_per_second, 1),
           "final_loss": history.losses[-1], "flops_per_item": flops_per_item}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average (the smoothing TensorBoard applies to loss curves)."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"weight must be in [0, 1), got {weight}")
    out, avg = [], None
    for v in values:
        avg = v if avg is None else weight * avg + (1 - weight) * v
        out.append(avg)
    return out
