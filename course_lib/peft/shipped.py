"""Shipped adapters: a LoRA adapter in ``data/`` with the recipe that made it and a hash that proves it.

A shipped folder is an adapter folder (:func:`course_lib.peft.adapter.save_adapter`, fp16 tensors to
keep it small) plus ``config.json``::

    {"seed": 0, "data_sha256": "…", <the caller's hyper-parameters>, "lora": {r, lora_alpha, targets…},
     "losses": [per-step training losses], "weights_sha256": "<sha256 of adapter_model.safetensors>"}

:func:`verify_shipped` recomputes the weight file's sha256 and refuses a file that differs from the one
recorded; :func:`load_shipped` verifies, then loads with :func:`~course_lib.peft.adapter.load_adapter`
(which also refuses an adapter made for another base model, by its fingerprint). This module sits in the
``peft`` layer so the applications below post-training (``agent``, ``webgpt``) can load what
``course_lib.posttrain.behaviour_cloning`` trains.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
from torch import nn

from course_lib.peft.adapter import CONFIG_FILE, WEIGHTS_FILE, load_adapter, save_adapter

SHIP_FILE = "config.json"
REQUIRED = ("seed", "data_sha256")  # keys the caller's config must carry


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_sha256(data) -> str:
    """sha256 of JSON-serialisable training data (e.g. a list of chats), key order and spacing fixed."""
    try:
        text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except TypeError as err:
        raise TypeError(f"data must be JSON-serialisable (lists, dicts, str, numbers): {err}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ship_adapter(model: nn.Module, folder: str | Path, config: dict, losses: list[float]) -> Path:
    """Write ``model``'s LoRA adapter (fp16) and ``config.json`` (recipe, loss curve, weight hash) to ``folder``.

    ``config`` must hold ``seed`` and ``data_sha256`` (see :func:`data_sha256`) and the hyper-parameters
    of the run; the LoRA settings and the weight file's sha256 are added here. Returns the folder.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict of the run's settings, got {type(config).__name__}")
    missing = [k for k in REQUIRED if k not in config]
    if missing:
        raise ValueError(f"config must record {missing} (the seed and the training data's sha256)")
    clash = [k for k in ("lora", "losses", "weights_sha256") if k in config]
    if clash:
        raise ValueError(f"config must not set {clash}: ship_adapter writes them")
    losses = [float(x) for x in losses]
    if not losses or not all(math.isfinite(x) for x in losses):
        raise ValueError("losses must be a non-empty list of finite per-step losses")
    folder = save_adapter(model, folder, dtype=torch.float16)
    lora = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    record = {**config, "lora": lora, "losses": [round(x, 6) for x in losses],
              "weights_sha256": file_sha256(folder / WEIGHTS_FILE)}
    try:
        text = json.dumps(record, indent=1, ensure_ascii=False)
    except TypeError as err:
        raise TypeError(f"config must be JSON-serialisable: {err}") from None
    (folder / SHIP_FILE).write_text(text + "\n", encoding="utf-8")
    return folder


def verify_shipped(folder: str | Path) -> dict:
    """The folder's ``config.json`` after checking that the weight file's sha256 is the one recorded.

    Raises ``ValueError`` when a file is missing or the weights differ from the shipped ones.
    """
    folder = Path(folder)
    for name in (SHIP_FILE, CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise ValueError(f"{folder} is not a shipped adapter: {name} is missing")
    config = json.loads((folder / SHIP_FILE).read_text(encoding="utf-8"))
    if "weights_sha256" not in config:
        raise ValueError(f"{folder / SHIP_FILE} records no weights_sha256")
    actual = file_sha256(folder / WEIGHTS_FILE)
    if actual != config["weights_sha256"]:
        raise ValueError(f"{folder / WEIGHTS_FILE} has sha256 {actual}, but {SHIP_FILE} records "
                         f"{config['weights_sha256']}: the weights are not the shipped ones")
    return config


def load_shipped(model: nn.Module, folder: str | Path) -> dict:
    """Verify the shipped adapter in ``folder``, load it into ``model`` (in place); returns its ``config.json``."""
    config = verify_shipped(folder)
    load_adapter(model, folder)
    return config
