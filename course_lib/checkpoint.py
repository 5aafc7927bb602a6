"""Training checkpoints: tensors in safetensors, everything else in a JSON manifest; exact resume.

A checkpoint is a directory::

    step_000040/
      model.safetensors       the model's state dict (parameter names as keys)
      optimizer.safetensors   the optimizer's tensors (Adam's exp_avg, exp_avg_sq, step), flattened
      manifest.json           format, step, seed, model config, optimizer hyperparameters and the
                              structure of its state, RNG states (Python, NumPy, torch CPU/CUDA),
                              scheduler state, sha256 of both tensor files

safetensors (Hugging Face) stores raw tensors with a JSON header and no pickled code, so loading
a checkpoint cannot run code (``torch.load`` of a pickle can). The optimizer's nested state dict
``{"state": {0: {"exp_avg": T, …}}, "param_groups": [...]}`` is flattened: every tensor becomes a key
``state/0/exp_avg`` and the manifest keeps the tree with ``{"__tensor__": key}`` in its place.

Resuming is bit-identical when everything that decides the next step is restored: parameters,
optimizer moments and step counts, the scheduler, and every RNG (dropout masks, data sampling).
:func:`save_checkpoint` writes into a temporary directory and renames it, so a crash mid-save
leaves the previous checkpoint intact. :func:`load_checkpoint` refuses a missing, corrupt
(hash mismatch, unreadable manifest) or mismatched (other config, names or shapes) checkpoint with
a :class:`CheckpointError` saying which.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT = "course-checkpoint/1"
MODEL_FILE, OPTIMIZER_FILE, MANIFEST_FILE = "model.safetensors", "optimizer.safetensors", "manifest.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: corrupt, incomplete, or made for another model."""


def flatten_state(tree, prefix: str = "") -> tuple[dict[str, torch.Tensor], object]:
    """Split a nested dict/list of tensors and plain values into ``(tensors by path, JSON skeleton)``."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(node, path):
        if isinstance(node, torch.Tensor):
            tensors[path] = node.detach().cpu().contiguous()
            return {"__tensor__": path}
        if isinstance(node, dict):
            return {"__dict__": [[_key(k), walk(v, f"{path}/{k}" if path else str(k))] for k, v in node.items()]}
        if isinstance(node, (list, tuple)):
            return {"__list__": [walk(v, f"{path}/{i}" if path else str(i)) for i, v in enumerate(node)],
                    "tuple": isinstance(node, tuple)}
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot store a {type(node).__name__} in a checkpoint (at {path!r})")

    return tensors, walk(tree, prefix)


def _key(k):
    if not isinstance(k, (str, int)):
        raise TypeError(f"checkpoint dict keys must be str or int, got {type(k).__name__}")
    return k


def unflatten_state(tensors: dict[str, torch.Tensor], skeleton):
    """Inverse of :func:`flatten_state`."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {k: unflatten_state(tensors, v) for k, v in skeleton["__dict__"]}
        if "__list__" in skeleton:
            items = [unflatten_state(tensors, v) for v in skeleton["__list__"]]
            return tuple(items) if skeleton["tuple"] else items
    return skeleton


def rng_state() -> dict:
    """Every RNG the training loop draws from, as JSON (torch states base64-encoded; CUDA: the current
    device's, the one a torchrun rank uses, when CUDA is in use)."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    b64 = lambda t: base64.b64encode(t.numpy().tobytes()).decode()  # noqa: E731
    return {"python": [version, list(mt), gauss], "numpy": [name, keys.tolist(), pos, has_gauss, cached],
            "torch": b64(torch.get_rng_state()),
            "cuda": b64(torch.cuda.get_rng_state()) if torch.cuda.is_initialized() else None}  # current GPU


def set_rng_state(state: dict) -> None:
    """Restore the RNGs saved by :func:`rng_state`."""
    unb64 = lambda s: torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)  # noqa: E731
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(unb64(state["torch"]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(unb64(state["cuda"]))


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _config_dict(config) -> dict | None:
    if config is None or isinstance(config, dict):
        return config
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    raise TypeError(f"config must be a dataclass, a dict or None, got {type(config).__name__}")


def save_checkpoint(directory: str | os.PathLike, model: nn.Module | dict, optimizer=None, *, step: int,
                    seed: int | None = None, config=None, scheduler=None, extra: dict | None = None) -> Path:
    """Write a checkpoint directory (atomically: temp dir, then rename) and return its path.

    ``model`` and ``optimizer`` are modules/optimizers or their state dicts (a distributed run
    passes gathered full state dicts). ``config`` is the model's config dataclass (or dict).
    """
    if not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    directory = Path(directory)
    model_sd = model.state_dict() if isinstance(model, nn.Module) else model
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model_sd.items()}, tmp / MODEL_FILE)
    files = [MODEL_FILE]
    manifest = {"format": FORMAT, "step": step, "seed": seed, "config": _config_dict(config), "rng": rng_state(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None, "extra": extra or {}}
    if optimizer is not None:
        opt_sd = optimizer.state_dict() if isinstance(optimizer, torch.optim.Optimizer) else optimizer
        tensors, skeleton = flatten_state(opt_sd)
        save_file(tensors, tmp / OPTIMIZER_FILE)
        files.append(OPTIMIZER_FILE)
        kind = type(optimizer).__name__ if isinstance(optimizer, torch.optim.Optimizer) else None
        manifest["optimizer"] = {"type": kind, "state": skeleton,
                                 "hyperparameters": [{k: v for k, v in g.items() if k != "params"}
                                                     for g in opt_sd["param_groups"]]}
    manifest["files"] = {name: sha256(tmp / name) for name in files}
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(tmp, directory)
    return directory


def read_manifest(directory: str | os.PathLike) -> dict:
    """The manifest of a checkpoint, after checking that its files exist and match their hashes."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {directory}")
    if not path.is_file():
        raise CheckpointError(f"{directory} has no {MANIFEST_FILE}: not a checkpoint, or an interrupted save")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"corrupt manifest {path}: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} manifest")
    for name, digest in manifest["files"].items():
        if not (directory / name).is_file():
            raise CheckpointError(f"checkpoint {directory} is missing {name}")
        if sha256(directory / name) != digest:
            raise CheckpointError(f"corrupt checkpoint: {directory / name} does not match its sha256 in the manifest")
    return manifest


def load_checkpoint(directory: str | os.PathLike, model: nn.Module | None = None, optimizer=None, *,
                    config=None, scheduler=None, restore_rng: bool = True) -> dict:
    """Load a checkpoint into ``model``/``optimizer``/``scheduler`` and the RNGs; return the manifest.

    ``optimizer=True`` only reads its state (``manifest["optimizer_state"]``) without loading it. With ``config`` given, a checkpoint written for another config is refused. The manifest's
    ``"model"`` and ``"optimizer_state"`` entries hold the loaded state dicts (for callers that
    place them themselves, e.g. into an FSDP-sharded model).
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if config is not None and _config_dict(config) != manifest["config"]:
        raise CheckpointError(f"checkpoint {directory} was written for config {manifest['config']}, "
                              f"not {_config_dict(config)}")
    model_sd = load_file(directory / MODEL_FILE)
    if model is not None:
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in model_sd.items()}
        if expected != found:
            diff = sorted(set(expected.items()) ^ set(found.items()))[:6]
            raise CheckpointError(f"checkpoint {directory} does not fit this model; differing (name, shape): {diff}")
        model.load_state_dict(model_sd)
    manifest["model"] = model_sd
    if optimizer is not None:
        if "optimizer" not in manifest:
            raise CheckpointError(f"checkpoint {directory} holds no optimizer state")
        kind = manifest["optimizer"]["type"]
        if isinstance(optimizer, torch.optim.Optimizer) and kind not in (None, type(optimizer).__name__):
            raise CheckpointError(f"checkpoint {directory} holds {kind} state, "
                                  f"not {type(optimizer).__name__}")
        state = unflatten_state(load_file(directory / OPTIMIZER_FILE), manifest["optimizer"]["state"])
        manifest["optimizer_state"] = state
        if isinstance(optimizer, torch.optim.Optimizer):
            optimizer.load_state_dict(state)
    if scheduler is not None:
        scheduler.load_state_dict(manifest["scheduler"])
    if restore_rng:
        set_rng_state(manifest["rng"])
    return manifest


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The ``step_*`` directory with the highest step under ``root`` (``None`` when there is none)."""
    root = Path(root)
    steps = sorted(root.glob("step_*[0-9]"), key=lambda p: int(p.name.split("_")[1])) if root.is_dir() else []
    return steps[-1] if steps else None


def checkpoint_dir(root: str | os.PathLike, step: int) -> Path:
    """``root/step_000040``: the name :func:`latest_checkpoint` finds."""
    return Path(root) / f"step_{step:06d}"
