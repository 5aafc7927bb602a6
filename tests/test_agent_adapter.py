"""The behaviour-cloned agent adapter: the shipped file is the one its recipe records, and the script still trains.

``data/adapters/agent`` is made by ``scripts/train_agent_adapter.py`` (dev-split demonstrations of the
scripted experts, ``course_lib.posttrain.behaviour_cloning.train_lora_sft``). The shipped weights must
hash to the sha256 in its ``config.json``, the recipe there must be the script's ``CONFIG``, and a tiny
run of the same script (two steps) must ship an adapter that loads and changes the model's output.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

from course_lib.peft.adapter import WEIGHTS_FILE
from course_lib.peft.shipped import load_shipped, verify_shipped

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "adapters" / "agent"


def _script():
    spec = importlib.util.spec_from_file_location("train_agent_adapter", ROOT / "scripts" / "train_agent_adapter.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_adapter_is_the_one_its_recipe_records():
    config = verify_shipped(SHIPPED)  # raises if the weights' sha256 differs from the recorded one
    script = _script()
    assert {k: config[k] for k in script.CONFIG} == script.CONFIG
    assert len(config["losses"]) == config["steps"] and all(0 < x < 10 for x in config["losses"])
    assert (SHIPPED / WEIGHTS_FILE).stat().st_size <= 3 * 2 ** 20  # fp16, within this chapter's 3 MB
    assert set(config["formats"]) == {"react", "function_calling", "autogpt"}


def test_a_changed_weight_file_is_refused(tmp_path):
    folder = tmp_path / "agent"
    folder.mkdir()
    for f in SHIPPED.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    data = bytearray((folder / WEIGHTS_FILE).read_bytes())
    data[-1] ^= 1
    (folder / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        verify_shipped(folder)


def test_a_tiny_training_run_ships_an_adapter_that_loads(tmp_path, smollm2):
    out = tmp_path / "tiny"
    assert _script().main(["--tiny", "--out", str(out), "--threads", "1"]) == 0
    config = verify_shipped(out)
    assert config["steps"] == 2 and len(config["losses"]) == 2 and config["formats"] == ["function_calling"]
    tuned = copy.deepcopy(smollm2)
    load_shipped(tuned, out)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.allclose(tuned(ids).logits, smollm2(ids).logits)  # the two steps moved the LoRA B matrices off zero
