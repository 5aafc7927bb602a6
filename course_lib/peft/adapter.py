"""Counting trainable parameters, and saving / loading only the LoRA adapter.

An adapter folder holds two files, like peft's ``save_pretrained``:

- ``adapter_model.safetensors``: the LoRA tensors only (``<module>.lora_A.weight``, ``<module>.lora_B.weight``,
  ``<module>.lora_magnitude_vector`` for DoRA), a few MB instead of the model's 540 MB;
- ``adapter_config.json``: the settings that made it (r, α, targets, rsLoRA, DoRA, dropout) and a
  fingerprint of the base model, so an adapter is never loaded into a model it was not trained on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from course_lib.peft.lora import LoRALinear, inject_lora, lora_layers

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (shared tensors, e.g. tied embeddings, counted once)."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def base_fingerprint(model: nn.Module) -> str:
    """A hash of the base model: parameter names, shapes and the first values of each base weight."""
    digest = hashlib.sha256()
    state = {name.replace(".base_layer.", "."): t for name, t in model.state_dict().items() if ".lora_" not in name}
    for name, tensor in sorted(state.items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        if tensor.is_floating_point() and tensor.numel():
            digest.update(tensor.detach().reshape(-1)[:16].float().cpu().numpy().round(6).tobytes())
    return digest.hexdigest()[:16]


def _layer_settings(layers: dict[str, LoRALinear]) -> dict:
    first = next(iter(layers.values()))
    return {"r": first.r, "lora_alpha": first.alpha, "use_rslora": first.rslora, "use_dora": first.dora,
            "lora_dropout": getattr(first.lora_dropout, "p", 0.0), "target_modules": sorted(layers)}


def save_adapter(model: nn.Module, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write the model's LoRA tensors and config to ``folder``; returns the folder.

    ``dtype`` (e.g. ``torch.float16``) stores the tensors in that type to halve the file; loading
    casts them back to the model's type.
    """
    from safetensors.torch import save_file

    layers = lora_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no LoRA layers to save; call inject_lora first")
    if any(layer.merged for layer in layers.values()):
        raise ValueError("unmerge() the model before saving its adapter (merged weights are not an adapter)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype or None, got {dtype!r}")
    tensors = {name: t.detach().to(dtype or t.dtype).contiguous().cpu()
               for name, t in model.state_dict().items() if ".lora_" in name}
    config = {**_layer_settings(layers), "base_model": type(model).__name__, "base_fingerprint": base_fingerprint(model)}
    save_file(tensors, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


def load_adapter(model: nn.Module, folder: str | Path) -> nn.Module:
    """Load an adapter saved by :func:`save_adapter` into ``model`` (injecting LoRA layers if it has none).

    Refuses (``ValueError``) an adapter made for another base model, or one whose rank or targets
    differ from the LoRA layers the model already has.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG_FILE).exists() or not (folder / WEIGHTS_FILE).exists():
        raise ValueError(f"{folder} is not an adapter folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    if config["base_fingerprint"] != base_fingerprint(model):
        raise ValueError(f"this adapter was made for another base model ({config['base_model']}, fingerprint "
                         f"{config['base_fingerprint']}), not this {type(model).__name__} "
                         f"(fingerprint {base_fingerprint(model)})")
    layers = lora_layers(model)
    if layers:
        have = _layer_settings(layers)
        for key in ("r", "target_modules", "use_dora"):
            if have[key] != config[key]:
                raise ValueError(f"adapter {key}={config[key]!r} does not match the model's LoRA layers "
                                 f"({key}={have[key]!r}); load it into a fresh model")
    else:
        inject_lora(model, config["target_modules"], r=config["r"], alpha=config["lora_alpha"],
                    dropout=config["lora_dropout"], rslora=config["use_rslora"], dora=config["use_dora"])
    tensors = load_file(str(folder / WEIGHTS_FILE))
    own = {name: t for name, t in model.state_dict().items() if ".lora_" in name}
    if set(tensors) != set(own):
        raise ValueError(f"adapter tensors do not match the model's LoRA layers: missing "
                         f"{sorted(set(own) - set(tensors))[:3]}, unexpected {sorted(set(tensors) - set(own))[:3]}")
    for name, t in tensors.items():
        if t.shape != own[name].shape:
            raise ValueError(f"adapter tensor {name} has shape {tuple(t.shape)}, the model expects "
                             f"{tuple(own[name].shape)} (another rank?)")
    with torch.no_grad():
        for name, t in tensors.items():
            own[name].copy_(t)
    return model
