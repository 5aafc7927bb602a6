"""The WebGPT behaviour-cloning adapter: the training script works (a tiny run), and the shipped file is the recorded one."""

import copy
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "adapters" / "webgpt"


def _script():
    spec = importlib.util.spec_from_file_location("train_webgpt_adapter", ROOT / "scripts" / "train_webgpt_adapter.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_chats_are_dev_only_and_short():
    from course_lib import pretrained
    from course_lib.webgpt.tasks import load_tasks

    chats, dropped = _script().training_chats(512, pretrained.smollm2_tokenizer())
    dev = {t.question for t in load_tasks("dev")}
    test = {t.question for t in load_tasks("test")}
    asked = {c[1]["content"].split("\n", 1)[0].removeprefix("Question: ") for c in chats}
    assert asked <= dev and not asked & test
    assert len(chats) > 500 and dropped < 0.1 * len(chats), (len(chats), dropped)
    assert all([m["role"] for m in c] == ["system", "user", "assistant"] for c in chats)


def test_a_tiny_training_run_ships_a_verified_adapter(tmp_path, tiny_llama, one_thread):
    from course_lib import pretrained
    from course_lib.peft.shipped import load_shipped
    from course_lib.webgpt.tasks import demonstrations, load_tasks

    tok = pretrained.smollm2_tokenizer()
    chats = [c for c in demonstrations(load_tasks("dev")[:4]) if len(c[1]["content"]) < 200][:3]
    recipe = {**_script().RECIPE, "steps": 3, "batch_tokens": 256, "max_length": 256}
    config = _script().train(copy.deepcopy(tiny_llama), tok, chats, tmp_path / "bc", recipe, progress=False)
    assert len(config["losses"]) == 3 and config["chats"] == len(chats) and config["seed"] == 0
    assert config["lora"]["r"] == recipe["r"]
    load_shipped(copy.deepcopy(tiny_llama), tmp_path / "bc")          # the hash verifies and the weights load
    weights = tmp_path / "bc" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-2] + b"\x00\x00")
    with pytest.raises(ValueError, match="not the shipped ones"):
        load_shipped(copy.deepcopy(tiny_llama), tmp_path / "bc")


def test_the_shipped_adapter_matches_its_recorded_hash_and_recipe():
    from course_lib.peft.shipped import verify_shipped

    if not SHIPPED.exists():
        pytest.fail(f"{SHIPPED} is missing: run python scripts/train_webgpt_adapter.py")
    config = verify_shipped(SHIPPED)
    recipe = _script().RECIPE
    assert {k: config[k] for k in recipe} == recipe, "the shipped adapter was made by another recipe"
    assert sum(f.stat().st_size for f in SHIPPED.iterdir()) <= 3 * 2**20
    assert len(config["losses"]) == recipe["steps"] and config["losses"][-1] < config["losses"][0]
    assert json.loads((SHIPPED / "adapter_config.json").read_text())["r"] == recipe["r"]


def test_chapter_11_loads_the_shipped_adapter_without_an_environment_variable():
    cells = json.loads((ROOT / "chapters" / "11_webgpt.ipynb").read_text(encoding="utf-8"))["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "adapted_smollm2()" in code and "verify_shipped(ADAPTER)" in code
    assert "COURSE_TOOL_ADAPTER" not in code and "WEBGPT_ADAPTER" not in code
