"""Agent benchmarks (chapter 10): constrained decoding on SmolLM2.

- per-token time of grammar-constrained greedy decoding vs the same number of unconstrained
  greedy tokens (the overhead is the logits processor: advancing the automaton and the cached
  mask; the first call also builds the masks of the states it meets, reported as ``cold``);
- valid-call rate of constrained vs unconstrained decoding on the tool-call task's test requests
  (valid: the reply parses as JSON and validates against the tool's schema), with argument accuracy.
"""

from __future__ import annotations

import json
import time

import torch

from bench.harness import BenchResult, benchmark, interleaved
from course_lib import pretrained, tool_calls
from course_lib.agent.constrained import ToolCallGrammar, generate_calls
from course_lib.agent.schema import validate_call
from course_lib.generation import generate

N_PROMPTS = 24


def _grammar(tokenizer) -> ToolCallGrammar:
    return ToolCallGrammar.from_tokenizer(tool_calls.SCHEMAS, tokenizer, name_key="tool", arguments_key="args")


def _valid(reply: str) -> bool:
    try:
        call = json.loads(reply)
    except json.JSONDecodeError:
        return False
    return validate_call(call, tool_calls.SCHEMAS, "tool", "args") == []


def call_rates(model, tokenizer, grammar: ToolCallGrammar | None, examples) -> dict:
    """Valid-call rate, exact-format rate and argument accuracy of greedy replies (batched)."""
    replies = generate_calls(model, tokenizer, [tool_calls.prompt(ex.request) for ex in examples], grammar,
                             max_new_tokens=40)
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
    print(f"  constrained {per_c * 1e3:.1f} ms/token, unconstrained {per_f * 1e3:.1f} ms/token, "
          f"ratio {per_c / per_f:.3f}; cold first call {cold_s / n * 1e3:.1f} ms/token; grammar build {build_s:.2f} s")
    return BenchResult(per_c, per_f, "s/token", higher_is_better=False, reference_name="unconstrained greedy, same tokens",
                       notes="warm mask cache; ratio < 1 means overhead",
                       extra={"tokens": n, "cold_s_per_token": cold_s / n, "grammar_build_s": build_s,
                              "cached_states": len(grammar.masks._masks)})


@benchmark("agent: valid-call rate, constrained vs unconstrained (SmolLM2, 24 tool-call test requests)")
def valid_call_rate() -> BenchResult:
    model, tokenizer = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    examples = tool_calls.load("test")[:N_PROMPTS]
    free = call_rates(model, tokenizer, None, examples)
    constrained = call_rates(model, tokenizer, _grammar(tokenizer), examples)
    print("  | decoding | valid call (parses + schema) | exact format | argument accuracy |")
    print("  |---|---|---|---|")
    for name, r in (("unconstrained greedy", free), ("constrained greedy", constrained)):
        print(f"  | {name} | {r['valid']:.0%} | {r['format']:.0%} | {r['accuracy']:.0%} |")
    print("  first replies:", [r[:60] for r in free["replies"][:2]], constrained["replies"][:2])
    return BenchResult(constrained["valid"], free["valid"], "valid-call rate", higher_is_better=True,
                       reference_name="unconstrained greedy", notes=f"{len(examples)} prompts, max 40 new tokens",
                       extra={k: {m: r[m] for m in ("valid", "format", "accuracy")}
                              for k, r in (("unconstrained", free), ("constrained", constrained))})
