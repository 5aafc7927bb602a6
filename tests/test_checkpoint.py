"""Checkpoints: exact resume, safetensors files the reference library reads, clear errors."""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from course_lib import checkpoint
from course_lib.checkpoint import CheckpointError
from course_lib.models.gpt import GPT, GPTConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_ddp.py"
ARGS = ["--steps", "6", "--save-every", "3", "--dropout", "0.1", "--batch-size", "4", "--seq-len", "16",
        "--corpus-chars", "20000"]


def train_script():
    spec = importlib.util.spec_from_file_location("train_ddp", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_resume_continues_bit_identically(tmp_path):
    """Save at step 3, resume to step 6: every parameter and Adam moment equals the uninterrupted run's, exactly.

    Dropout is on, so the resumed run also needs the RNG state (its masks) — and the learning-rate
    schedule and AdamW's step counts — to land on the same numbers.
    """
    script = train_script()
    whole, part = tmp_path / "whole", tmp_path / "part"
    full = script.main([*ARGS, "--out", str(whole)])
    part.mkdir()
    shutil.copytree(whole / "step_000003", part / "step_000003")  # the run "crashed" after saving step 3
    resumed = script.main([*ARGS, "--out", str(part), "--resume"])
    assert resumed["start"] == 3 and resumed["losses"] == full["losses"][3:]
    for name in ("model.safetensors", "optimizer.safetensors"):
        a, b = load_file(whole / "step_000006" / name), load_file(part / "step_000006" / name)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}:{k} differs after resuming"
    # the check can fail: resumed with another RNG state (other dropout masks) the run ends elsewhere
    other = tmp_path / "other" / "step_000003"
    shutil.copytree(whole / "step_000003", other)
    manifest = json.loads((other / "manifest.json").read_text())
    torch.manual_seed(123)
    manifest["extra"]["rank_rng"] = [checkpoint.rng_state()]
    (other / "manifest.json").write_text(json.dumps(manifest))
    drifted = script.main([*ARGS, "--out", str(other.parent), "--resume"])
    assert drifted["losses"] != full["losses"][3:]

def test_resume_refuses_a_checkpoint_of_another_mode(tmp_path):
    script = train_script()
    script.main([*ARGS, "--steps", "2", "--out", str(tmp_path)])
    with pytest.raises(CheckpointError, match="written by a ddp run"):
        script.main([*ARGS, "--steps", "3", "--out", str(tmp_path), "--resume", "--mode", "fsdp"])


def tiny():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    model = GPT(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randint(16, (2, 8))).logits.sum().backward()
    opt.step()
    return config, model, opt


def test_files_are_plain_safetensors_with_a_manifest(tmp_path):
    config, model, opt = tiny()
    path = checkpoint.save_checkpoint(tmp_path / "ck", model, opt, step=7, seed=3, config=config)
    weights = load_file(path / "model.safetensors")  # the safetensors library reads it directly
    assert weights.keys() == model.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    manifest = json.loads((path / "manifest.json").read_text())
    assert (manifest["step"], manifest["seed"], manifest["config"]["n_embd"]) == (7, 3, 8)
    assert manifest["optimizer"]["type"] == "AdamW" and manifest["optimizer"]["hyperparameters"][0]["lr"] == 1e-2
    assert manifest["files"]["model.safetensors"] == checkpoint.sha256(path / "model.safetensors")
    assert not (tmp_path / "ck.tmp").exists()

    config2, model2, opt2 = tiny()
    for p in model2.parameters():
        p.data.zero_()
    loaded = checkpoint.load_checkpoint(path, model2, torch.optim.AdamW(model2.parameters(), lr=5.0), config=config)
    assert loaded["step"] == 7
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))


def test_optimizer_state_round_trips_exactly():
    _, _, opt = tiny()
    state = opt.state_dict()
    tensors, skeleton = checkpoint.flatten_state(state)
    assert all("/" in k for k in tensors)  # state/0/exp_avg …
    back = checkpoint.unflatten_state(tensors, json.loads(json.dumps(skeleton)))
    assert back["param_groups"] == state["param_groups"]
    for i, s in state["state"].items():
        assert all(torch.equal(s[k], back["state"][i][k]) for k in s)
    with pytest.raises(TypeError, match="cannot store a set"):
        checkpoint.flatten_state({"a": {1, 2}})


def test_rng_state_round_trip():
    state = json.loads(json.dumps(checkpoint.rng_state()))
    draws = random.random(), np.random.rand(), torch.rand(3)
    checkpoint.set_rng_state(state)
    again = random.random(), np.random.rand(), torch.rand(3)
    assert draws[:2] == again[:2] and torch.equal(draws[2], again[2])


def test_latest_checkpoint(tmp_path):
    assert checkpoint.latest_checkpoint(tmp_path) is None
    for step in (5, 40, 9):
        checkpoint.checkpoint_dir(tmp_path, step).mkdir()
    assert checkpoint.latest_checkpoint(tmp_path).name == "step_000040"


def test_bad_checkpoints_are_refused(tmp_path):
    config, model, opt = tiny()
    path = checkpoint.save_checkpoint(tmp_path / "ck", model, opt, step=1, config=config)
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        checkpoint.load_checkpoint(tmp_path / "nowhere", model)
    with pytest.raises(CheckpointError, match="written for config"):
        checkpoint.load_checkpoint(path, model, config=GPTConfig(vocab_size=16, n_positions=8, n_embd=8, n_layer=2,
                                                                 n_head=2))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        checkpoint.load_checkpoint(path, GPT(GPTConfig(vocab_size=16, n_positions=8, n_embd=8, n_layer=2, n_head=2)))
    with pytest.raises(CheckpointError, match="holds AdamW state, not SGD"):
        checkpoint.load_checkpoint(path, model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="step must be an int"):
        checkpoint.save_checkpoint(tmp_path / "x", model, step=-1)

    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last weight
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        checkpoint.load_checkpoint(path, model)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt manifest"):
        checkpoint.load_checkpoint(path, model)
    (path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        checkpoint.load_checkpoint(path, model)
    path2 = checkpoint.save_checkpoint(tmp_path / "ck2", model, step=1)
    (path2 / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        checkpoint.load_checkpoint(path2, model)
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        checkpoint.load_checkpoint(checkpoint.save_checkpoint(tmp_path / "ck3", model, step=1), model, opt)
