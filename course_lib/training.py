"""A small training loop shared by every chapter that trains something.

It does what each chapter would otherwise rewrite: move batches to the device, step the
optimizer (and an optional LR scheduler), clip gradients, show a ``tqdm.auto`` progress bar,
keep a loss history, and optionally evaluate every few steps. The chapter supplies the model,
the batches and the loss, so the interesting part stays in the notebook.

    history = train(model, batches, loss_fn, optimizer, steps=cfg.pick(200, 5000))
    plot_history(history)            # course_lib.viz.curves

Throughput and FLOPs are accounted for every run: items (tokens) per second, and the training
FLOPs per item counted on the first step by ``torch.utils.flop_counter`` (every matmul, forward and
backward). For a Transformer this count is the 6·N·T rule plus attention
(:func:`transformer_train_flops_per_token`, tested equal on a tiny GPT), so
FLOPs/item × items/s ÷ peak is the model-FLOP utilisation (MFU) that ``scripts/gpu_check.sh`` prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count
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
    flops_per_item: float | None = None                # training FLOPs per item (counted on step 0, or given)

    @property
    def items_per_second(self) -> float:
        """Throughput over the run (items counted by ``count_items``)."""
        return self.items / self.seconds if self.seconds else 0.0

    def mfu(self, peak_flops: float) -> float | None:
        """Model-FLOP utilisation: FLOPs/item × items/s ÷ the hardware's peak FLOP/s."""
        return None if self.flops_per_item is None else self.flops_per_item * self.items_per_second / peak_flops


def transformer_train_flops_per_token(n_matmul_params: int, n_layers: int, d_attn: int, context: int) -> float:
    """Training FLOPs per token of a Transformer: 6·N + 12·L·d_attn·T (Kaplan et al. 2020 §2.1; PaLM App. B).

    N counts the parameters used as matmul weights (the output head included). Forward, each costs
    one multiply-add (2 FLOPs) per token; backward costs two matmuls per forward matmul (gradients
    of the input and of the weight): 2N + 4N = 6N. Attention adds QKᵀ and A·V, 2·T·d_attn each per
    token and layer forward (full T × T, as the kernels compute it), ×3 with backward: 12·L·d_attn·T.
    """
    return 6 * n_matmul_params + 12 * n_layers * d_attn * context


def count_tokens(batch) -> int:
    """Default item count: elements of the first integer tensor in the batch (token ids or labels)."""
    tensors = list(_tensors(batch))
    for t in tensors:
        if not t.is_floating_point() and t.dtype != torch.bool:
            return t.numel()
    return tensors[0].shape[0] if tensors and tensors[0].dim() else 0


def _tensors(batch):
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, (tuple, list)):
        for b in batch:
            yield from _tensors(b)
    elif isinstance(batch, dict):
        for b in batch.values():
            yield from _tensors(b)


def _flop_counter() -> FlopCounterMode:
    """torch's FLOP counter counting model FLOPs of fused attention on every device.

    It knows only the CUDA attention kernels, and counts their backward with the recomputation of
    QKᵀ (2.5× forward: hardware FLOPs). MFU counts model FLOPs (PaLM App. B): backward = 2× forward.
    """
    def forward(q, k, v, *args, out_shape=None, **kwargs):  # the counter passes shapes
        return sdpa_flop_count(q, k, v)

    def backward(grad_out, q, k, v, *args, out_shape=None, **kwargs):
        return 2 * sdpa_flop_count(q, k, v)

    aten = torch.ops.aten
    kernels = ["flash_attention_for_cpu", "flash_attention", "efficient_attention", "cudnn_attention"]
    mapping = {getattr(aten, f"_scaled_dot_product_{name}"): forward for name in kernels}
    mapping |= {getattr(aten, f"_scaled_dot_product_{name}_backward"): backward for name in kernels}
    return FlopCounterMode(display=False, custom_mapping=mapping)


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
    after every step (e.g. to update a live plot). ``count_items(batch)`` counts the items of a
    batch (default :func:`count_tokens`). ``flops_per_item`` defaults to the FLOPs of step 0's
    forward and backward counted by ``torch.utils.flop_counter`` divided by its items. When the
    environment variable ``COURSE_RESULTS`` names a file, a JSON line with items/s and FLOPs/item is
    appended to it: ``scripts/gpu_check.sh`` prints the MFU of every run from it.
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
    count_items = count_items or count_tokens
    model.train()
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc)
    for step in bar:
        batch = _to_device(get_batch(step), device)
        counter = _flop_counter() if step == 0 and flops_per_item is None else contextlib.nullcontext()
        with counter:
            loss = loss_fn(model, batch)
            if loss.dim() != 0:
                raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if step == 0 and flops_per_item is None and count_items(batch):
            flops_per_item = counter.get_total_flops() / count_items(batch)
        if clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        value = loss.item()
        history.steps.append(step)
        history.losses.append(value)
        history.lrs.append(optimizer.param_groups[0]["lr"])
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
    history.flops_per_item = flops_per_item
    model.eval()
    _record(history, desc, device)
    return history


def _record(history: TrainHistory, desc: str, device: torch.device) -> None:
    path = os.environ.get("COURSE_RESULTS")
    if not path:
        return
    row = {"desc": desc, "device": str(device), "steps": len(history.steps), "seconds": round(history.seconds, 3),
           "items": history.items, "items_per_second": round(history.items_per_second, 1),
           "final_loss": history.losses[-1], "flops_per_item": history.flops_per_item}
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
