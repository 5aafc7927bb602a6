"""Agent benchmarks (chapter 10): constrained decoding on SmolLM2, and success on the multi-step tasks.

- per-token time of grammar-constrained greedy decoding vs the same number of unconstrained
  greedy tokens (the overhead is the logits processor: advancing the automaton and the cached
  mask; the first call also builds the masks of the states it meets, reported as ``cold``);
- valid-call rate of constrained vs unconstrained decoding on the tool-call task's test requests
  (valid: the reply parses as JSON and validates against the tool's schema), with argument accuracy;
- success on the test split of ``course_lib.agent.tasks`` for each loop (ReAct, function calling,
  AutoGPT) under free / grammar / adapter / adapter + grammar (and an OpenAI-compatible endpoint when
  ``OPENAI_BASE_URL`` is set): success rate, mean steps, tokens and seconds per task. The whole split
  by default (hours on 2 CPU cores); ``COURSE_AGENT_BENCH_TASKS=n`` takes the first n tasks per family.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import time
from pathlib import Path

import torch

from bench.harness import BenchResult, benchmark, interleaved
from course_lib import pretrained, tool_calls
from course_lib.agent.evaluate import STEP_CAP
from course_lib.constrained.schema import validate_call
from course_lib.constrained.tool_calls import ToolCallGrammar, generate_calls
from course_lib.generation import generate

N_PROMPTS = 24


def few_shot_prompt(request: str) -> str:
    """The task prompt after three worked turns (one per tool, from the train split): the prompting baseline."""
    train = tool_calls.load("train")
    messages = [{"role": "system", "content": tool_calls.SYSTEM}]
    for tool in tool_calls.TOOLS:
        ex = next(e for e in train if e.call["tool"] == tool)
        messages += [{"role": "user", "content": ex.request}, {"role": "assistant", "content": ex.answer}]
    return pretrained.smollm2_chat_prompt(messages + [{"role": "user", "content": request}])


def _grammar(tokenizer) -> ToolCallGrammar:
    return ToolCallGrammar.from_tokenizer(tool_calls.SCHEMAS, tokenizer, name_key="tool", arguments_key="args")


def _valid(reply: str) -> bool:
    try:
        call = json.loads(reply)
    except json.JSONDecodeError:
        return False
    return validate_call(call, tool_calls.SCHEMAS, "tool", "args") == []


def call_rates(model, tokenizer, grammar: ToolCallGrammar | None, examples, prompt=tool_calls.prompt) -> dict:
    """Valid-call rate, exact-format rate and argument accuracy of greedy replies (batched)."""
    replies = generate_calls(model, tokenizer, [prompt(ex.request) for ex in examples], grammar, max_new_tokens=40)
    scores = tool_calls.score(replies, examples)
    return {"valid": sum(map(_valid, replies)) / len(replies), "format": scores["format"],
            "accuracy": scores["accuracy"], "replies": replies}


@benchmark("agent: constrained vs unconstrained decoding, time per token (SmolLM2, tool-call grammar)")
def constrained_overhead() -> BenchResult:
    model, tokenizer = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    t0 = time.perf_counter()
    grammar = _grammar(tokenizer)
    build_s = time.perf_counter() - t0
    ids = torch.tensor([tokenizer.encode(tool_calls.prompt(tool_calls.load("test")[0].request))])
    eos = grammar.masks.eos_id

    def constrained():
        return generate(model, ids, 40, logits_processor=grammar.processor(), stop_tokens=[eos], pad_token_id=eos)

    t0 = time.perf_counter()
    n = constrained().shape[1] - ids.shape[1]  # cold: masks built on first sight of each state
    cold_s = time.perf_counter() - t0
    times = interleaved({"constrained": constrained, "free": lambda: generate(model, ids, n)}, rounds=5, warmup=1)
    per_c, per_f = times["constrained"] / n, times["free"] / n
    full, logits = constrained(), torch.zeros(1, grammar.masks.size)

    def replay():  # the logits processor alone, fed the same tokens
        processor = grammar.processor()
        for t in range(ids.shape[1], full.shape[1]):
            processor(full[:, :t], logits)

    per_p = interleaved({"processor": replay}, rounds=5, warmup=1)["processor"] / n
    print(f"  constrained {per_c * 1e3:.1f} ms/token, unconstrained {per_f * 1e3:.1f} ms/token, "
          f"ratio {per_c / per_f:.3f}; processor alone {per_p * 1e3:.2f} ms/token; cold first call {cold_s / n * 1e3:.1f} ms/token; grammar build {build_s:.2f} s")
    return BenchResult(per_c, per_f, "s/token", higher_is_better=False, reference_name="unconstrained greedy, same tokens",
                       notes="warm mask cache; ratio < 1 means overhead",
                       extra={"tokens": n, "processor_s_per_token": per_p, "cold_s_per_token": cold_s / n, "grammar_build_s": build_s,
                              "cached_states": grammar.masks.cached_states})


@benchmark("agent: valid-call rate, constrained vs unconstrained (SmolLM2, 24 tool-call test requests)")
def valid_call_rate() -> BenchResult:
    model, tokenizer = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    examples = tool_calls.load("test")[:N_PROMPTS]
    grammar = _grammar(tokenizer)
    rows = {(p, g): call_rates(model, tokenizer, grammar if g else None, examples, prompt)
            for p, prompt in (("task prompt", tool_calls.prompt), ("3-shot", few_shot_prompt))
            for g in (False, True)}
    print("  | prompt | decoding | valid call (parses + schema) | exact format | argument accuracy |")
    print("  |---|---|---|---|---|")
    for (p, g), r in rows.items():
        print(f"  | {p} | {'constrained' if g else 'unconstrained'} greedy | {r['valid']:.0%} | {r['format']:.0%} "
              f"| {r['accuracy']:.0%} |")
    print("  unconstrained replies:", [r[:50] for r in rows["3-shot", False]["replies"][:3]])
    constrained, free = rows["3-shot", True], rows["3-shot", False]
    return BenchResult(constrained["valid"], free["valid"], "valid-call rate", higher_is_better=True,
                       reference_name="unconstrained greedy, 3-shot prompt",
                       notes=f"{len(examples)} prompts, max 40 new tokens",
                       extra={f"{p}, {'constrained' if g else 'unconstrained'}": {m: r[m] for m in ("valid", "format", "accuracy")}
                              for (p, g), r in rows.items()})


# ---------------------------------------------------------------- success on the multi-step task set

ADAPTER = Path(__file__).resolve().parents[1] / "data" / "adapters" / "agent"


def bench_tasks() -> list:
    """The test split, or its first ``COURSE_AGENT_BENCH_TASKS`` tasks per family (a development subset)."""
    from course_lib.agent import tasks

    tests = tasks.load("test")
    per_family = int(os.environ.get("COURSE_AGENT_BENCH_TASKS", "0"))
    if per_family:
        tests = [t for family in tasks.FAMILIES for t in [t for t in tests if t.family == family][:per_family]]
    return tests


@functools.lru_cache(maxsize=1)
def _agent_setup():
    """SmolLM2, its copy with the shipped adapter, the task tools and MiniLM (AutoGPT's memory), loaded once."""
    from course_lib.agent import memory, tasks
    from course_lib.peft.shipped import load_shipped

    model, tokenizer = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    tuned = copy.deepcopy(model)
    load_shipped(tuned, ADAPTER)
    return model, tuned.eval(), tokenizer, tasks.task_tools(), memory.minilm_embedder()


def success_rows(fmt: str, tests: list) -> list[dict]:
    """The success table of loop ``fmt`` on ``tests``: every local condition, and the endpoint when configured."""
    from course_lib.agent import evaluate

    model, tuned, tokenizer, tools, embed = _agent_setup()
    conditions = evaluate.local_conditions(fmt, tools, model, tokenizer, tuned)
    if os.environ.get("OPENAI_BASE_URL"):
        from course_lib.chat import OpenAIChatModel
        conditions["endpoint"] = OpenAIChatModel()
    else:
        print("  OPENAI_BASE_URL is not set: no endpoint row")
    episodes = [evaluate.run_episode(task, fmt, chat, tools, name, embed)[0]
                for name, chat in conditions.items() for task in tests]
    rows = evaluate.success_table(episodes)
    print(evaluate.format_table(rows))
    return rows


def _success(fmt: str) -> BenchResult:
    tests = bench_tasks()
    rows = {r["condition"]: r for r in success_rows(fmt, tests)}
    best, free = rows["adapter + grammar"], rows["free"]
    target = {"react": 0.8, "function_calling": 0.8, "autogpt": 0.6}[fmt]
    return BenchResult(best["success"], free["success"], "success rate", higher_is_better=True,
                       reference_name="free SmolLM2 (no adapter, no grammar)",
                       notes=f"{len(tests)} test tasks, step cap {STEP_CAP}; target success >= {target:.0%}",
                       extra={"table": list(rows.values()), "target_success": target})


@benchmark("agent: ReAct success on the test tasks (SmolLM2 + adapter + grammar vs free)")
def react_success() -> BenchResult:
    return _success("react")


@benchmark("agent: function-calling success on the test tasks (SmolLM2 + adapter + grammar vs free)")
def function_calling_success() -> BenchResult:
    return _success("function_calling")


@benchmark("agent: AutoGPT-loop success on the test tasks (SmolLM2 + adapter + grammar vs free)")
def autogpt_success() -> BenchResult:
    return _success("autogpt")
