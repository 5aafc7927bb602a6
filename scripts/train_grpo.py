"""Chapter 04d's shipped run: SmolLM2-135M-Instruct + LoRA, a cold-start SFT on the format, then GRPO, on dev only.

    PYTHONPATH=. python scripts/train_grpo.py      # writes data/adapters/grpo_arith/ (fp16 adapter + config.json)

DeepSeek-R1's recipe in miniature (R1 §2.3.1 "cold start"): the base model never writes the
``<answer>`` tag (0 % format on held-out), so every GRPO group would score all-equal rewards and get
no advantage; a few SFT steps on dev demonstrations teach the format, then GRPO
(``course_lib.posttrain.loop.grpo_train``) trains on correctness + format rewards. Seeded; every
setting is in CONFIG and is written to ``config.json`` next to the adapter with the sha256 of the
training problems, the loss curves, and the held-out numbers measured before, after SFT and after
GRPO. Only the dev split is trained on; the held-out split is only evaluated (greedy decoding).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from course_lib import pretrained
from course_lib.peft.shipped import data_sha256, ship_adapter
from course_lib.posttrain import rollout
from course_lib.posttrain.behaviour_cloning import train_lora_sft
from course_lib.posttrain.loop import grpo_train
from course_lib.posttrain.rewards import arithmetic_problems, number_accuracy

OUT = Path(__file__).resolve().parents[1] / "data" / "adapters" / "grpo_arith"
CONFIG = dict(seed=0, max_operand=20, lora_targets="all-linear", lora_r=4, lora_alpha=8,
              sft_chats=32, sft_steps=4, sft_batch_tokens=480, sft_lr=1e-3,
              grpo_steps=8, prompts_per_step=2, num_generations=8, max_new_tokens=10, temperature=1.0,
              beta=0.04, epsilon=0.2, grpo_lr=3e-4, format_weight=0.5, eval_problems=48, threads=1)


def training_problems(config: dict):
    """The dev problems of the run: SFT demonstrations first, then the GRPO prompts (never held-out)."""
    n_grpo = config["grpo_steps"] * config["prompts_per_step"]
    dev = arithmetic_problems("dev", config["sft_chats"] + n_grpo, seed=config["seed"],
                              max_operand=config["max_operand"])
    return dev[:config["sft_chats"]], dev[config["sft_chats"]:]


def main(config: dict = CONFIG, out: Path = OUT) -> dict:
    """Evaluate, warm up, run GRPO, evaluate again, ship the adapter; returns the record written to config.json."""
    torch.set_num_threads(config["threads"])
    model, tok = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    stop, pad, prompt_fn = tok.special_tokens["<|im_end|>"], tok.pad_token_id, pretrained.smollm2_chat_prompt
    held = arithmetic_problems("heldout", config["eval_problems"], seed=config["seed"], max_operand=config["max_operand"])
    sft_dev, grpo_dev = training_problems(config)
    cpu0, wall0 = time.process_time(), time.perf_counter()

    def evaluate(name):
        r = rollout.evaluate(model, tok, prompt_fn, held, config["max_new_tokens"], stop, pad)
        row = {"accuracy": r["accuracy"], "format": r["format"],
               "number_accuracy": number_accuracy(r["texts"], [p.answer for p in held]),
               "samples": r["texts"][:6]}
        print(f"[{name}] held-out {row}", flush=True)
        return row

    evals = {"before": evaluate("before")}
    sft_losses = train_lora_sft(model, tok, [p.demonstration() for p in sft_dev], targets=config["lora_targets"],
                                r=config["lora_r"], alpha=config["lora_alpha"], lr=config["sft_lr"],
                                steps=config["sft_steps"], batch_tokens=config["sft_batch_tokens"], seed=config["seed"])
    evals["after_sft"] = evaluate("after SFT")
    steps, tokens, seconds = [], 0, 0.0
    for stats, _ in grpo_train(model, tok, grpo_dev, steps=config["grpo_steps"],
                               prompts_per_step=config["prompts_per_step"], num_generations=config["num_generations"],
                               max_new_tokens=config["max_new_tokens"], lr=config["grpo_lr"], stop_id=stop, pad_id=pad,
                               template_fn=prompt_fn, beta=config["beta"], epsilon=config["epsilon"],
                               temperature=config["temperature"], format_weight=config["format_weight"],
                               seed=config["seed"]):
        tokens, seconds = tokens + stats["tokens"], seconds + stats["seconds"]
        steps.append({k: round(v, 5) for k, v in stats.items() if k not in ("tokens", "seconds")})
        print(f"grpo step {len(steps)}: {steps[-1]}", flush=True)
    evals["after_grpo"] = evaluate("after GRPO")
    record = {**config, "data_sha256": data_sha256({"sft": [p.demonstration() for p in sft_dev],
                                                    "grpo": [p.messages for p in grpo_dev]}),
              "sft_losses": [round(x, 5) for x in sft_losses], "grpo": steps, "eval": evals,
              "grpo_tokens_per_s": round(tokens / seconds, 1), "minutes": round((time.perf_counter() - wall0) / 60, 1),
              "cpu_minutes": round((time.process_time() - cpu0) / 60, 1)}
    ship_adapter(model, out, record, [s["loss"] for s in steps])
    return record


if __name__ == "__main__":
    main({**CONFIG, **json.loads(sys.argv[1])} if len(sys.argv) > 1 else CONFIG,
         Path(sys.argv[2]) if len(sys.argv) > 2 else OUT)
