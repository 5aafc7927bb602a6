"""Train and ship the WebGPT behaviour-cloning adapter: SmolLM2-135M-Instruct + LoRA on the expert's dev episodes.

WebGPT's first stage (Nakano et al. 2021, §3.1) is behaviour cloning: supervised fine-tuning on demonstrations
recorded in the browsing environment. The demonstrations here are the scripted expert's episodes on the *dev*
questions (:func:`course_lib.webgpt.tasks.demonstrations`, one chat per command, in the episode's own prompt
format); the loss is on the assistant tokens (the command) only; the loop is
:func:`course_lib.posttrain.behaviour_cloning.train_lora_sft`. The adapter ships, fp16, in
``data/adapters/webgpt`` with its recipe, the training data's sha256 and the loss curve
(:func:`course_lib.peft.shipped.ship_adapter`); ``tests/test_webgpt_adapter.py`` checks the shipped hash.

    python scripts/train_webgpt_adapter.py                 # the shipped recipe (2 CPU threads)
    python scripts/train_webgpt_adapter.py --steps 2 --out /tmp/bc   # a quick try
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "adapters" / "webgpt"
RECIPE = {"seed": 0, "steps": 10, "batch_tokens": 640, "max_length": 512, "lr": 3e-3, "r": 8, "alpha": 16.0,
          "targets": ["q_proj", "k_proj", "v_proj", "o_proj"], "max_steps": 6, "window": 8}


def training_chats(max_length: int, tokenizer, max_steps: int = 6, window: int = 8) -> tuple[list, int]:
    """The expert's dev demonstrations that fit ``max_length`` tokens, and how many were dropped for length."""
    from course_lib import pretrained
    from course_lib.posttrain.sft import render_with_mask
    from course_lib.webgpt.tasks import demonstrations, load_tasks

    template = pretrained.smollm2_chat_template()
    chats = demonstrations(load_tasks("dev"), max_steps=max_steps, window=window)
    kept = [c for c in chats if len(render_with_mask(c, tokenizer, template)[0]) <= max_length]
    return kept, len(chats) - len(kept)


def train(model, tokenizer, chats: list, out: str | Path, recipe: dict, progress: bool = True) -> dict:
    """Behaviour-clone ``chats`` into a LoRA on ``model`` and ship it to ``out``; returns the shipped config."""
    from course_lib.peft.shipped import data_sha256, ship_adapter, verify_shipped
    from course_lib.posttrain.behaviour_cloning import train_lora_sft

    start = time.perf_counter()
    losses = train_lora_sft(model, tokenizer, chats, targets=tuple(recipe["targets"]), r=recipe["r"],
                            alpha=recipe["alpha"], lr=recipe["lr"], steps=recipe["steps"],
                            max_length=recipe["max_length"], batch_tokens=recipe["batch_tokens"],
                            seed=recipe["seed"], progress=progress)
    config = {**recipe, "data": "webgpt.tasks.demonstrations(load_tasks('dev')), chats <= max_length tokens",
              "chats": len(chats), "data_sha256": data_sha256(chats), "script": "scripts/train_webgpt_adapter.py",
              "train_seconds": round(time.perf_counter() - start, 1), "torch_threads": torch.get_num_threads()}
    ship_adapter(model, out, config, losses)
    return verify_shipped(out)


def main(argv=None) -> int:
    """Parse the command line, train on SmolLM2-135M-Instruct and ship the adapter."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--steps", type=int, default=RECIPE["steps"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    from course_lib import pretrained

    torch.set_num_threads(args.threads)
    recipe = {**RECIPE, "steps": args.steps}
    tokenizer = pretrained.smollm2_tokenizer()
    chats, dropped = training_chats(recipe["max_length"], tokenizer, recipe["max_steps"], recipe["window"])
    print(f"{len(chats)} demonstration steps from the dev split ({dropped} longer than {recipe['max_length']} "
          "tokens left out)")
    config = train(pretrained.smollm2(), tokenizer, chats, args.out, recipe)
    print(f"shipped {args.out}: {config['steps']} steps in {config['train_seconds']} s, loss "
          f"{config['losses'][0]:.3f} -> {config['losses'][-1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
