"""PEFT benchmarks (chapter 05): LoRA training memory vs full fine-tuning, our LoRA forward vs peft's,
and the weight memory of a Q4_1 (QLoRA-style) base vs the fp32 base.

Peak memory is ``course_lib.profiling.peak_memory`` of one training step (forward, backward, the
optimizer's first step, which allocates its state); the model's own weights are inputs and are
not counted on either side.
"""

from __future__ import annotations

import copy

import torch

from bench.harness import BenchResult, benchmark, interleaved
from course_lib import pretrained, tool_calls
from course_lib.peft.lora import inject_lora, lora_layers
from course_lib.profiling import peak_memory

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]  # chapter 05's fine-tune


def _step(model, params):
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    examples = tool_calls.load("train")[:8]
    ids, labels = tool_calls.training_batch(pretrained.smollm2_tokenizer(), examples)

    def step():
        loss = tool_calls.answer_loss(model.train()(ids).logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


@benchmark("peft: LoRA training step peak memory vs full fine-tuning (SmolLM2)")
def lora_step_memory() -> BenchResult:
    base = pretrained.smollm2()
    lora = copy.deepcopy(base)
    inject_lora(lora, TARGETS, r=8, alpha=16)
    lora_step = _step(lora, [p for p in lora.parameters() if p.requires_grad])
    full_step = _step(base, list(base.parameters()))
    _, peak_lora = peak_memory(lora_step)
    _, peak_full = peak_memory(full_step)
    times = interleaved({"lora": lora_step, "full": full_step}, rounds=3, warmup=0)
    t_lora, t_full = times["lora"], times["full"]
    return BenchResult(peak_lora / 2**20, peak_full / 2**20, "MiB", higher_is_better=False, target=1 / 0.7,
                       reference_name="full fine-tuning, AdamW", notes="ratio >= 1.43 means LoRA <= 0.7x",
                       extra={"lora_step_s": t_lora, "full_step_s": t_full, "batch": "8 tool-call examples"})


@benchmark("peft: our LoRA forward vs peft's (SmolLM2, q,v r=8, 1x128 tokens)")
def lora_forward_speed() -> BenchResult:
    from peft import LoraConfig, get_peft_model

    from course_lib.peft.reference import hf_llama

    ours = pretrained.smollm2()
    ref = get_peft_model(hf_llama(ours), LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])).eval()
    inject_lora(ours, ["q_proj", "v_proj"], r=8, alpha=16)
    with torch.no_grad():
        for name, layer in lora_layers(ours).items():
            layer.lora_B.weight.normal_(std=0.02)
            ref.base_model.model.get_submodule(name).lora_B["default"].weight.copy_(layer.lora_B.weight)
            ref.base_model.model.get_submodule(name).lora_A["default"].weight.copy_(layer.lora_A.weight)
    ids = torch.randint(0, 49152, (1, 128))
    with torch.no_grad():
        times = interleaved({"ours": lambda: ours(ids), "peft": lambda: ref(input_ids=ids)}, rounds=7, warmup=1)
    t_ours, t_ref = times["ours"], times["peft"]
    return BenchResult(t_ours, t_ref, "s", higher_is_better=False, target=1.0, reference_name="peft 0.21.2 on transformers")


@benchmark("peft: Q4_1-base LoRA weight memory vs fp32-base LoRA (SmolLM2)")
def quantized_base_memory() -> BenchResult:
    from course_lib.peft.quantized import module_bytes, quantize_base

    fp32 = pretrained.smollm2()
    q4 = copy.deepcopy(fp32)
    quantize_base(q4)
    for m in (fp32, q4):
        inject_lora(m, TARGETS, r=8, alpha=16)
    ids = torch.randint(0, 49152, (1, 64))
    with torch.no_grad():
        times = interleaved({"q4": lambda: q4(ids), "fp32": lambda: fp32(ids)}, rounds=3, warmup=1)
    t_q4, t_fp32 = times["q4"], times["fp32"]
    return BenchResult(module_bytes(q4) / 2**20, module_bytes(fp32) / 2**20, "MiB", higher_is_better=False,
                       reference_name="fp32 base", notes="embedding (28M params) stays fp32 in both",
                       extra={"q4_forward_s": t_q4, "fp32_forward_s": t_fp32})
