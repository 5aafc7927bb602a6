"""Behaviour-clone the expert agents into one LoRA adapter for SmolLM2-135M and ship it in ``data/adapters/agent``.

WebGPT's first stage (Nakano et al. 2021, §3.3) at SmolLM2 scale: demonstrations from the scripted
experts of ``course_lib.agent.experts`` (dev tasks only; they run the real tools through the real
ReAct, function-calling and AutoGPT loops), then SFT with the loss on assistant tokens only
(``course_lib.posttrain.behaviour_cloning.train_lora_sft``). One adapter serves the three formats.
``ship_adapter`` writes the fp16 weights and ``config.json`` (this recipe, the data's sha256, the loss
curve, the weights' sha256)::

    PYTHONPATH=. python scripts/train_agent_adapter.py                # ~minutes on 2 CPU cores
    PYTHONPATH=. python scripts/train_agent_adapter.py --tiny --out /tmp/a   # the test suite's smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from course_lib import pretrained
from course_lib.agent import experts, tasks
from course_lib.agent.memory import AgentMemory, minilm_embedder
from course_lib.posttrain.behaviour_cloning import data_sha256, ship_adapter, train_lora_sft

OUT = Path(__file__).resolve().parents[1] / "data" / "adapters" / "agent"
CONFIG = {"seed": 0, "tasks_per_family": 8, "formats": list(experts.FORMATS),
          "targets": r".*layers\.(1[8-9]|2[0-9])\.self_attn\.(q_proj|v_proj|o_proj)", "r": 8, "alpha": 16.0,
          "lr": 1e-3, "steps": 12, "batch_tokens": 700, "max_length": 1024}
TINY = {**CONFIG, "tasks_per_family": 1, "formats": ["function_calling"], "steps": 2, "batch_tokens": 512}


def dev_tasks(per_family: int) -> list[tasks.Task]:
    """The first ``per_family`` dev tasks of each family (never a test task)."""
    dev = tasks.load("dev")
    return [t for family in tasks.FAMILIES for t in [t for t in dev if t.family == family][:per_family]]


def build_chats(config: dict) -> list[list[dict]]:
    """Every demonstration chat of the chosen dev tasks, in each chosen format."""
    tools, chosen = tasks.task_tools(), dev_tasks(config["tasks_per_family"])
    embed = minilm_embedder() if "autogpt" in config["formats"] else None
    chats = []
    for fmt in config["formats"]:
        for task in chosen:
            memory = AgentMemory(embed) if fmt == "autogpt" else None
            chats += experts.demonstrations(task, fmt, tools, memory)
    return chats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder to ship the adapter to")
    parser.add_argument("--tiny", action="store_true", help="a two-step run on two chats (the test suite's check)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chats", type=Path, help="a JSON file of the chats: read if it exists, else written "
                        "(building them runs every demonstration, minutes on a busy CPU)")
    args = parser.parse_args(argv)
    config = TINY if args.tiny else CONFIG
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.chats is not None and args.chats.exists():
        chats = json.loads(args.chats.read_text(encoding="utf-8"))
    else:
        chats = build_chats(config)
        if args.chats is not None:
            args.chats.write_text(json.dumps(chats), encoding="utf-8")
    print(f"{len(chats)} demonstration chats in {time.perf_counter() - t0:.0f} s")
    model, tok = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    t0 = time.perf_counter()
    losses = train_lora_sft(model, tok, chats, targets=config["targets"], r=config["r"], alpha=config["alpha"],
                            lr=config["lr"], steps=config["steps"], batch_tokens=config["batch_tokens"],
                            max_length=config["max_length"], seed=config["seed"], progress=not args.tiny)
    minutes = (time.perf_counter() - t0) / 60
    print(f"trained {config['steps']} steps in {minutes:.1f} min; loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    folder = ship_adapter(model, args.out, {**config, "data_sha256": data_sha256(chats), "chats": len(chats),
                                            "train_minutes": round(minutes, 1)}, losses)
    print(f"shipped {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
