"""LoRA (Hu et al. 2021), rsLoRA (Kalajdzievski 2023) and DoRA (Liu et al. 2024) on any ``nn.Linear``.

LoRA freezes the pretrained weight W₀ (out × in) and learns a low-rank update (paper §4.1, eq. 3)::

    h = W₀x + (α/r) · B A x        A: (r × in) random,  B: (out × r) zero  → training starts at W₀

rsLoRA scales by α/√r instead of α/r so the update's size does not shrink as r grows. DoRA splits
the merged weight into a magnitude vector m (one entry per output row) and a direction (DoRA §4.1)::

    W' = m ⊙ (W₀ + s·BA) / ‖W₀ + s·BA‖_row      m initialised to ‖W₀‖_row, the norm detached (§4.3)

Parameter names and initialisation follow ``peft/tuners/lora/layer.py`` (``lora_A``, ``lora_B``,
``lora_magnitude_vector``, Kaiming-uniform A with a = √5) so weights copy across by name.
Injection replaces modules found by name; the base model's own parameter names are untouched
except that a wrapped layer's weight moves to ``<name>.base_layer.weight`` (as in peft).

transformers' ``Conv1D`` (GPT-2's ``c_attn``, ``c_proj``, ``c_fc``) is a linear layer that stores
its weight transposed, (in × out); peft wraps it with ``fan_in_fan_out=True``. Here too: A and B
keep their shapes, and W₀ is read and merged through ``weight.T`` (``peft/tuners/lora/layer.py``).
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_TARGETS = ("q_proj", "v_proj")  # the paper's choice, §4.2 / §7.1


def is_conv1d(module: nn.Module) -> bool:
    """transformers' ``Conv1D``: a linear layer with its weight stored as (in × out)."""
    utils = sys.modules.get("transformers.pytorch_utils")  # not imported: no model can hold one
    return utils is not None and isinstance(module, utils.Conv1D)


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update (optionally DoRA)."""

    def __init__(self, base_layer: nn.Module, r: int = 8, alpha: float = 8.0, dropout: float = 0.0,
                 rslora: bool = False, dora: bool = False):
        super().__init__()
        if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
            raise ValueError(f"r (the LoRA rank) must be a positive int, got {r!r}")
        if not isinstance(alpha, (int, float)) or alpha <= 0:
            raise ValueError(f"alpha must be a number > 0, got {alpha!r}")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.fan_in_fan_out = is_conv1d(base_layer)
        if not self.fan_in_fan_out and not (hasattr(base_layer, "in_features") and hasattr(base_layer, "out_features")):
            raise TypeError(f"base_layer must be a linear layer with in_features/out_features (or transformers' "
                            f"Conv1D), got {type(base_layer).__name__}")
        self.base_layer = base_layer
        for p in base_layer.parameters():
            p.requires_grad_(False)
        if self.fan_in_fan_out:
            self.in_features, self.out_features = base_layer.weight.shape  # Conv1D weight: (in, out)
        else:
            self.in_features, self.out_features = base_layer.in_features, base_layer.out_features
        self.r, self.alpha, self.rslora, self.dora = r, float(alpha), rslora, dora
        self.scaling = alpha / math.sqrt(r) if rslora else alpha / r
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.Linear(self.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, self.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # peft's default A init
        nn.init.zeros_(self.lora_B.weight)                             # B = 0: ΔW = 0 at step 0
        self.lora_A.to(self.base_weight().device)
        self.lora_B.to(self.base_weight().device)
        if dora:  # m = ‖W₀‖ per output row (B = 0 at init)
            self.lora_magnitude_vector = nn.Parameter(self.base_weight().norm(dim=1).detach().clone())
        self.merged = False
        self.disabled = False  # True inside disable_adapter(): the layer is W₀ alone
        self._merged_norm: torch.Tensor | None = None

    def base_weight(self) -> torch.Tensor:
        """W₀ (out × in) as a float tensor (a quantized base dequantizes it; a Conv1D's is a transposed view)."""
        if hasattr(self.base_layer, "dequantized_weight"):
            return self.base_layer.dequantized_weight()
        return self.base_layer.weight.T if self.fan_in_fan_out else self.base_layer.weight

    def delta_weight(self) -> torch.Tensor:
        """s · B A  (out × in)."""
        return self.scaling * (self.lora_B.weight @ self.lora_A.weight)

    def _dora_scale(self, delta: torch.Tensor) -> torch.Tensor:
        """m / ‖W₀ + ΔW‖_row, the norm detached (DoRA §4.3)  → (out,)."""
        norm = (self.base_weight() + delta).norm(dim=1).detach()
        return self.lora_magnitude_vector / norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)  # (..., out)
        if self.merged or self.disabled:
            return result
        dropped = self.lora_dropout(x)
        lora = self.lora_B(self.lora_A(dropped)) * self.scaling  # (..., out)
        if not self.dora:
            return result + lora
        scale = self._dora_scale(self.delta_weight().detach())  # (out,)
        base = result if isinstance(self.lora_dropout, nn.Identity) or not self.training else F.linear(
            dropped, self.base_weight())  # peft applies the direction to the dropped input in training
        bias = getattr(self.base_layer, "bias", None)
        if bias is not None and base is result:
            base = base - bias
        return result + (scale - 1) * base + scale * lora

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into W₀ so inference costs one matmul: W₀ ← W₀ + sBA (DoRA: m ⊙ direction)."""
        if self.merged:
            raise ValueError("this LoRA layer is already merged; call unmerge() first")
        if not isinstance(getattr(self.base_layer, "weight", None), nn.Parameter):
            raise TypeError(f"cannot merge into a {type(self.base_layer).__name__} base (quantized weights "
                            "have no fp32 matrix to add to); keep the adapter separate")
        weight = self.base_weight()  # (out × in); in-place updates reach the parameter through the view
        delta = self.delta_weight()
        if self.dora:
            self._merged_norm = (weight + delta).norm(dim=1)
            weight.copy_((self.lora_magnitude_vector / self._merged_norm)[:, None] * (weight + delta))
        else:
            weight.add_(delta)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo :meth:`merge`, restoring W₀ (up to fp32 rounding)."""
        if not self.merged:
            raise ValueError("this LoRA layer is not merged; there is nothing to unmerge")
        weight = self.base_weight()
        if self.dora:
            weight.copy_(weight / (self.lora_magnitude_vector / self._merged_norm)[:, None])
            self._merged_norm = None
        weight.sub_(self.delta_weight())
        self.merged = False

    def extra_repr(self) -> str:
        kind = "DoRA" if self.dora else "rsLoRA" if self.rslora else "LoRA"
        return f"{kind}: in={self.in_features}, out={self.out_features}, r={self.r}, scaling={self.scaling:g}"


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or hasattr(module, "dequantized_weight") or is_conv1d(module)


def _check_targets(targets: str | Iterable[str]) -> str | list[str]:
    if isinstance(targets, str):
        return targets
    targets = list(targets)
    if not targets or not all(isinstance(t, str) and t for t in targets):
        raise TypeError(f"targets must be 'all-linear', a regex string or a non-empty list of names, got {targets!r}")
    return targets


def _selected(name: str, targets: str | list[str]) -> bool:
    """peft's rule: a regex must match the full module name; a listed name must equal it or end it after a dot."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def matching_modules(model: nn.Module, targets: str | Iterable[str]) -> list[str]:
    """Names of the linear layers ``targets`` selects (peft's rules).

    - a list of names: a module matches when its name equals one or ends with ``"." + name``;
    - ``"all-linear"``: every linear layer (``nn.Linear``, transformers' ``Conv1D``) except the output head ``lm_head``;
    - any other string: a regular expression that must match the full module name.
    """
    targets = _check_targets(targets)
    linear = [name for name, m in model.named_modules() if _is_linear(m) and not isinstance(m, LoRALinear)
              and ".lora_" not in name and not name.endswith(("lora_A", "lora_B"))]
    if targets == "all-linear":
        return [name for name in linear if name.split(".")[-1] != "lm_head"]
    return [name for name in linear if _selected(name, targets)]


def inject_lora(model: nn.Module, targets: str | Iterable[str] = DEFAULT_TARGETS, r: int = 8, alpha: float = 8.0,
                dropout: float = 0.0, rslora: bool = False, dora: bool = False) -> list[str]:
    """Freeze ``model`` and wrap each targeted linear layer in a :class:`LoRALinear`, in place.

    Returns the wrapped module names. Raises ``ValueError`` when no module matches, naming the
    types of same-named modules that are not linear layers.
    """
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("model already has LoRA layers; load or merge into a fresh model instead")
    targets = _check_targets(targets)
    names = matching_modules(model, targets)
    if not names:
        some = [n for n, m in model.named_modules() if _is_linear(m)][:6]
        other = [f"{n} ({type(m).__name__})" for n, m in model.named_modules() if n and _selected(n, targets)][:4]
        raise ValueError(f"targets {targets!r} match no linear module (nn.Linear or transformers' Conv1D) of "
                         f"{type(model).__name__}; module names look like {some}"
                         + (f"; the targets name modules of other types: {other}" if other else ""))
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        wrapped = LoRALinear(getattr(parent, child), r, alpha, dropout, rslora, dora)
        setattr(parent, child, wrapped.train(model.training))  # an eval-mode model stays in eval mode
    return names


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """``{module name: LoRALinear}`` of a model, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def _require_lora(model: nn.Module) -> dict[str, LoRALinear]:
    layers = lora_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no LoRA layers; call inject_lora first")
    return layers


@contextlib.contextmanager
def disable_adapter(model: nn.Module):
    """Run ``model`` as its frozen base inside the ``with`` block (peft's ``disable_adapter()``).

    Every LoRA layer returns W₀x alone, so the same weights serve as the reference model of DPO
    and GRPO without a second copy. Refused on a merged model (W₀ is not stored apart then).
    """
    layers = _require_lora(model)
    if any(layer.merged for layer in layers.values()):
        raise ValueError("cannot disable a merged adapter (its update is inside W₀); unmerge() first")
    for layer in layers.values():
        layer.disabled = True
    try:
        yield model
    finally:
        for layer in layers.values():
            layer.disabled = False


def merge(model: nn.Module) -> None:
    """Merge every LoRA layer of ``model`` (see :meth:`LoRALinear.merge`)."""
    for layer in _require_lora(model).values():
        layer.merge()


def unmerge(model: nn.Module) -> None:
    """Unmerge every LoRA layer of ``model`` (see :meth:`LoRALinear.unmerge`)."""
    for layer in _require_lora(model).values():
        layer.unmerge()
