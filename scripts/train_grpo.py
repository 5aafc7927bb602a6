"""Chapter 04d's shipped run: SmolLM2-135M-Instruct + LoRA, a short SFT warm-up on dev, then GRPO on dev.

    PYTHONPATH=. python scripts/train_grpo.py            # writes data/posttrain_grpo/ (adapter + history.json)

Seeded; every setting is in CONFIG and is written next to the adapter. Only the dev split is
trained on; the held-out split is only evaluated (greedy decoding), before, after SFT, after GRPO.
Not shipped yet: see docs/posttrain.md for the measured partial run and why.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import torch

from course_lib import pretrained
from course_lib.peft.adapter import WEIGHTS_FILE, save_adapter
from course_lib.peft.lora import inject_lora
from course_lib.posttrain import rollout
from course_lib.posttrain.rewards import arithmetic_problems

OUT = Path(__file__).resolve().parents[1] / "data" / "posttrain_grpo"
CONFIG = dict(seed=0, lora_targets="all-linear", lora_r=8, lora_alpha=16,
              sft_steps=4, sft_batch=16, sft_lr=2e-3,
              grpo_steps=6, prompts_per_step=2, num_generations=4, max_new_tokens=12, temperature=1.0,
              beta=0.04, epsilon=0.2, grpo_lr=1e-4, format_weight=0.5,
              eval_problems=32, threads=2)  # sized for 2 CPU cores shared with other jobs (~0.2 core each)


def main(config: dict = CONFIG, out: Path = OUT) -> dict:
    """Run the warm-up and GRPO, evaluate on held-out, save the adapter and ``history.json``; returns the history."""
    torch.manual_seed(config["seed"])
    torch.set_num_threads(config["threads"])
    model, tok = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    template, prompt_fn = pretrained.smollm2_chat_template(), pretrained.smollm2_chat_prompt
    stop, pad = tok.special_tokens["<|im_end|>"], tok.pad_token_id
    inject_lora(model, config["lora_targets"], r=config["lora_r"], alpha=config["lora_alpha"])
    params = [p for p in model.parameters() if p.requires_grad]
    held = arithmetic_problems("heldout", config["eval_problems"], seed=config["seed"])
    n_dev = config["sft_steps"] * config["sft_batch"] + config["grpo_steps"] * config["prompts_per_step"]
    dev = arithmetic_problems("dev", n_dev, seed=config["seed"])

    def evaluate(name):
        t = time.perf_counter()
        r = rollout.evaluate(model, tok, prompt_fn, held, config["max_new_tokens"], stop, pad)
        print(f"[{name}] held-out accuracy {r['accuracy']:.1%}, format {r['format']:.1%} "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
        return {"accuracy": r["accuracy"], "format": r["format"], "samples": r["texts"][:8]}

    history = {"config": config, "eval": {"before": evaluate("before")}, "sft_loss": [], "grpo": []}
    start = time.perf_counter()
    opt = torch.optim.AdamW(params, lr=config["sft_lr"])
    for s in range(config["sft_steps"]):
        batch = dev[s * config["sft_batch"]:(s + 1) * config["sft_batch"]]
        history["sft_loss"].append(round(rollout.sft_step(model, opt, tok, template, batch), 4))
        print(f"sft step {s}: loss {history['sft_loss'][-1]}", flush=True)
    history["sft_minutes"] = round((time.perf_counter() - start) / 60, 2)
    history["eval"]["after_sft"] = evaluate("after SFT")
    opt = torch.optim.AdamW(params, lr=config["grpo_lr"])
    gen = torch.Generator().manual_seed(config["seed"])
    grpo_dev = dev[config["sft_steps"] * config["sft_batch"]:]
    start, tokens = time.perf_counter(), 0
    for s in range(config["grpo_steps"]):
        probs = grpo_dev[s * config["prompts_per_step"]:(s + 1) * config["prompts_per_step"]]
        sampled = rollout.sample(model, tok, rollout.chat_prompt_ids(tok, prompt_fn, probs), config["num_generations"],
                                 config["max_new_tokens"], config["temperature"], stop, pad, gen)
        scored = rollout.score(probs, config["num_generations"], sampled[4], config["format_weight"])
        ro = rollout.Rollout(*sampled, *scored)
        out_step = rollout.grpo_step(model, opt, ro, beta=config["beta"], epsilon=config["epsilon"],
                                     temperature=config["temperature"])
        tokens += int(ro.prompt_mask.sum() + ro.completion_mask.sum())
        history["grpo"].append({"reward": round(ro.rewards.mean().item(), 4), "kl": round(out_step.kl, 5),
                                "accuracy": round(ro.correct.mean().item(), 4),
                                "format": round(ro.formatted.mean().item(), 4)})
        print(f"grpo step {s}: {history['grpo'][-1]}", flush=True)
    seconds = time.perf_counter() - start
    history["grpo_minutes"], history["grpo_tokens_per_s"] = round(seconds / 60, 2), round(tokens / seconds, 1)
    history["eval"]["after_grpo"] = evaluate("after GRPO")
    save_adapter(model, out)
    history["adapter_sha256"] = hashlib.sha256((out / WEIGHTS_FILE).read_bytes()).hexdigest()
    (out / "history.json").write_text(json.dumps(history, indent=1, ensure_ascii=False), encoding="utf-8")
    return history


if __name__ == "__main__":
    main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else CONFIG)
