"""Serving benchmarks (chapter 13): continuous batching vs a one-at-a-time queue, and int8 vs fp32 decode.

Load test: the real HTTP server (``serve_in_background``, loopback only) with SmolLM2, ``c`` concurrent
streaming clients (c = 1, 4, 16), each sending ``max(1, 4 // c)`` requests one after another
(greedy, ``max_tokens`` fixed). Per request: time to first token (TTFT: first content chunk) and
latency (until ``[DONE]``); per phase: aggregate completion tokens / wall time. The reference is
the same engine with one slot (``Engine(..., slots=1)``): the same code serving requests one at a
time in arrival order. Both servers run at once and each concurrency level is measured on both
back to back, the order flipping per level (a shared machine's load then hits both alike).
Bounded: at most 16 requests of 24 tokens per phase.

int8: single-stream greedy decode (``generate``, 32 tokens) with :func:`quantize_int8` (kernel path)
vs fp32, timed in alternating rounds; greedy agreement is the fraction of the 32 positions where the
int8 model emits the fp32 model's token, over 4 prompts (after a first divergence the texts differ).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import statistics
import time

import httpx
import torch

from bench.harness import BenchResult, benchmark, interleaved
from course_lib import pretrained
from course_lib.generation import generate
from course_lib.serving import MODEL_NAME, Engine, quantize_int8, serve_in_background, weight_bytes

PROMPTS = ["The history of the printing press", "A recipe for tomato soup", "How a rainbow forms",
           "The rules of chess", "Why the sky is blue", "A short story about a cat", "How bicycles work",
           "The life of honeybees"]
MAX_TOKENS = 24
CLIENTS = (1, 4, 16)


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def _one(http: httpx.AsyncClient, prompt: str) -> tuple[float, float, int]:
    """One streaming request: (TTFT s, latency s, completion tokens)."""
    body = {"model": MODEL_NAME, "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    start, first, tokens = time.perf_counter(), None, 0
    async with http.stream("POST", "/completions", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and chunk["choices"][0]["text"] and first is None:
                first = time.perf_counter()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    end = time.perf_counter()
    return (first or end) - start, end - start, tokens


async def _load(base_url: str, clients: int) -> dict:
    per_client = max(1, 4 // clients)

    async def client(i: int):
        return [await _one(http, PROMPTS[(i * per_client + j) % len(PROMPTS)] + f" (client {i})")
                for j in range(per_client)]

    async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:
        start = time.perf_counter()
        results = [r for rs in await asyncio.gather(*(client(i) for i in range(clients))) for r in rs]
        wall = time.perf_counter() - start
    ttft, latency, tokens = zip(*results)
    return {"clients": clients, "requests": len(results), "tokens": sum(tokens), "wall_s": wall,
            "tokens_per_s": sum(tokens) / wall, "ttft_p50": _percentile(ttft, 50), "ttft_p95": _percentile(ttft, 95),
            "latency_p50": _percentile(latency, 50), "latency_p95": _percentile(latency, 95)}


def load_tests(model, tokenizer) -> dict[str, list[dict]]:
    """Both servers up at once (one model); each concurrency level runs on both, the order flipping per level."""
    engines = {"batching-16": Engine(model, tokenizer, slots=16, max_len=256),
               "queue-1": Engine(model, tokenizer, slots=1, max_len=256)}
    rows: dict[str, list[dict]] = {name: [] for name in engines}
    with serve_in_background(engines["batching-16"]) as batching, serve_in_background(engines["queue-1"]) as queue:
        urls = {"batching-16": batching.base_url, "queue-1": queue.base_url}
        for url in urls.values():
            asyncio.run(_load(url, 1))  # warm-up
        for i, clients in enumerate(CLIENTS):
            for name in (list(urls) if i % 2 == 0 else list(urls)[::-1]):
                rows[name].append(asyncio.run(_load(urls[name], clients)))
    return rows


def _table(rows: dict[str, list[dict]]) -> str:
    lines = [f"{'engine':<12}{'clients':>8}{'tok/s':>8}{'TTFT p50':>10}{'p95':>7}{'latency p50':>13}{'p95':>7}"]
    for name, phases in rows.items():
        lines += [f"{name:<12}{p['clients']:>8}{p['tokens_per_s']:>8.1f}{p['ttft_p50']:>10.2f}{p['ttft_p95']:>7.2f}"
                  f"{p['latency_p50']:>13.2f}{p['latency_p95']:>7.2f}" for p in phases]
    return "\n".join(lines)


@benchmark("serving: continuous batching vs one-at-a-time queue, 16 streaming clients (SmolLM2, HTTP)")
def continuous_batching() -> BenchResult:
    model, tok = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    load = os.getloadavg()
    rows = load_tests(model, tok)
    print(_table(rows))
    ours, ref = rows["batching-16"][-1]["tokens_per_s"], rows["queue-1"][-1]["tokens_per_s"]
    return BenchResult(ours, ref, "tokens/s", higher_is_better=True, target=3.0,
                       reference_name="the same engine with 1 slot (one request at a time)",
                       notes=f"{MAX_TOKENS} greedy tokens per request; loadavg before {load[0]:.1f}",
                       extra={"phases": rows, "loadavg_before": load, "loadavg_after": os.getloadavg()})


@benchmark("serving: weight-only int8 vs fp32 greedy decode tokens/s (SmolLM2, 1 stream, 32 tokens)")
def int8_decode() -> BenchResult:
    fp32, tok = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    int8 = copy.deepcopy(fp32)
    quantize_int8(int8)
    prompts = [torch.tensor([tok.encode(pretrained.smollm2_chat_prompt([{"role": "user", "content": p}]))])
               for p in PROMPTS[:4]]
    n = 32
    agree = []
    with torch.no_grad():
        for ids in prompts:
            a, b = generate(fp32, ids, n)[0, ids.shape[1]:], generate(int8, ids, n)[0, ids.shape[1]:]
            agree.append((a == b).float().mean().item())
        times = interleaved({"int8": lambda: generate(int8, prompts[0], n), "fp32": lambda: generate(fp32, prompts[0], n)},
                            rounds=3, warmup=1)
    return BenchResult(n / times["int8"], n / times["fp32"], "tokens/s", higher_is_better=True, target=None,
                       reference_name="fp32 SmolLM2, same decode loop",
                       notes=f"greedy agreement {statistics.mean(agree):.3f} over 4 prompts x {n} tokens",
                       extra={"agreement_per_prompt": agree, "weight_MiB_int8": weight_bytes(int8) / 2**20,
                              "weight_MiB_fp32": weight_bytes(fp32) / 2**20, "loadavg": os.getloadavg()})
