"""The GRPO adapter shipped in data/adapters/grpo_arith: the file is the one its run wrote, made from dev data only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from course_lib.peft.adapter import WEIGHTS_FILE, base_fingerprint
from course_lib.peft.shipped import data_sha256, verify_shipped
from course_lib.posttrain.rewards import arithmetic_problems

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "data" / "adapters" / "grpo_arith"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_grpo", ROOT / "scripts" / "train_grpo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def config():
    return verify_shipped(FOLDER)  # raises if the weights' sha256 is not the recorded one


def test_shipped_file_is_small_fp16(config):
    from safetensors.torch import load_file

    tensors = load_file(str(FOLDER / WEIGHTS_FILE))
    assert tensors and all(t.dtype == torch.float16 for t in tensors.values())
    assert (FOLDER / WEIGHTS_FILE).stat().st_size < 3_000_000
    assert len(config["losses"]) == config["grpo_steps"] == len(config["grpo"])


def test_shipped_config_is_the_scripts_config_and_data(config, script):
    assert {k: config[k] for k in script.CONFIG} == script.CONFIG  # the script as committed made this adapter
    sft_dev, grpo_dev = script.training_problems(config)
    assert config["data_sha256"] == data_sha256({"sft": [p.demonstration() for p in sft_dev],
                                                 "grpo": [p.messages for p in grpo_dev]})
    held = arithmetic_problems("heldout", config["eval_problems"], seed=config["seed"], max_operand=config["max_operand"])
    trained = {(p.a, p.op, p.b) for p in sft_dev + grpo_dev}
    assert not trained & {(p.a, p.op, p.b) for p in held}  # never trained on what it is scored on
    assert set(config["eval"]) == {"before", "after_sft", "after_grpo"}


def test_shipped_adapter_is_for_smollm2(config, smollm2):
    assert config["lora"]["base_fingerprint"] == base_fingerprint(smollm2)
