"""Serving benchmarks (chapter 13): latency and throughput of the HTTP server under load, int8 vs fp32 decode.

Load test: the real HTTP server (``serve_in_background``, loopback only) with SmolLM2, ``c`` concurrent
streaming clients (c = 1, 4, 16; asyncio + httpx), each sending ``max(1, 4 // c)`` requests one after
another (greedy, ``max_tokens`` fixed). Per request, the arrival time of every streamed content chunk
gives the time to first token (TTFT), the inter-token latencies (ITL: gaps between chunks) and the
latency (last chunk); per phase: aggregate completion tokens / wall time, and p50/p95 of each
(:func:`summarise`). The reference is the same engine with one slot (``Engine(..., slots=1)``): the
same code serving requests one at a time in arrival order. Both servers run at once and each
concurrency level is measured on both back to back, the order flipping per level (a shared
machine's load then hits both alike). Bounded: at most 16 requests of 24 tokens per phase. One load
test (run once per process) feeds four rows: batching vs queue tokens/s at 16 clients, batching's
tokens/s at 16 vs 1 client, TTFT p50 at 16 clients vs the queue, and ITL p95 at 16 vs 1 client.

int8: single-stream greedy decode (``generate``, 32 tokens) with :func:`quantize_int8` (kernel path)
vs fp32, timed in alternating rounds; greedy agreement is the fraction of the 32 positions where the
int8 model emits the fp32 model's token, over 4 prompts (after a first divergence the texts differ).
"""

from __future__ import annotations

import asyncio
import copy
import functools
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


def percentile(values, q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, linear between order statistics (numpy's default)."""
    values = sorted(float(v) for v in values)
    if not values:
        raise ValueError("values must be a non-empty sequence of numbers")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q!r}")
    pos = (len(values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def summarise(results: list[tuple[float, list[float], int]], wall: float) -> dict:
    """One load phase in numbers, from per-request ``(start, chunk arrival times, completion tokens)``.

    TTFT: first content chunk - start. Inter-token latency (ITL): the gaps between consecutive
    content chunks of a request, pooled over the phase's requests (a chunk usually carries one
    token; a token held back by the detokeniser arrives with the next, so its gap spans two steps).
    TPOT: (last chunk - first chunk) / (tokens - 1) per request, the mean time per output token.
    """
    if not results or wall <= 0:
        raise ValueError("results must be non-empty and wall > 0")
    if any(not times for _, times, _ in results):
        raise ValueError("every request must have received at least one content chunk")
    ttft = [times[0] - start for start, times, _ in results]
    latency = [times[-1] - start for start, times, _ in results]
    gaps = [b - a for _, times, _ in results for a, b in zip(times, times[1:])]
    tpot = [(times[-1] - times[0]) / (n - 1) for _, times, n in results if n > 1]
    tokens = sum(n for _, _, n in results)
    return {"requests": len(results), "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall,
            "ttft_p50": percentile(ttft, 50), "ttft_p95": percentile(ttft, 95),
            "itl_p50": percentile(gaps, 50) if gaps else None, "itl_p95": percentile(gaps, 95) if gaps else None,
            "tpot_mean": statistics.mean(tpot) if tpot else None,
            "latency_p50": percentile(latency, 50), "latency_p95": percentile(latency, 95)}


async def _one(http: httpx.AsyncClient, prompt: str) -> tuple[float, list[float], int]:
    """One streaming request: (start time, arrival time of each content chunk, completion tokens)."""
    body = {"model": MODEL_NAME, "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    start, times, tokens = time.perf_counter(), [], 0
    async with http.stream("POST", "/completions", json=body) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and chunk["choices"][0]["text"]:
                times.append(time.perf_counter())
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return start, times or [time.perf_counter()], tokens


async def _load(base_url: str, clients: int) -> dict:
    per_client = max(1, 4 // clients)

    async def client(i: int):
        return [await _one(http, PROMPTS[(i * per_client + j) % len(PROMPTS)] + f" (client {i})")
                for j in range(per_client)]

    async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:
        start = time.perf_counter()
        results = [r for rs in await asyncio.gather(*(client(i) for i in range(clients))) for r in rs]
        wall = time.perf_counter() - start
    return {"clients": clients, **summarise(results, wall)}


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


def format_phases(rows: dict[str, list[dict]]) -> str:
    """The load test as a text table: tokens/s, TTFT, inter-token latency and latency per engine and level."""
    lines = [f"{'engine':<12}{'clients':>8}{'tok/s':>8}{'TTFT p50':>10}{'p95':>7}{'ITL p50':>9}{'p95':>7}"
             f"{'latency p50':>13}{'p95':>7}"]
    for name, phases in rows.items():
        lines += [f"{name:<12}{p['clients']:>8}{p['tokens_per_s']:>8.1f}{p['ttft_p50']:>10.2f}{p['ttft_p95']:>7.2f}"
                  f"{p['itl_p50']:>9.3f}{p['itl_p95']:>7.3f}{p['latency_p50']:>13.2f}{p['latency_p95']:>7.2f}"
                  for p in phases]
    return "\n".join(lines)


@functools.cache
def _measured() -> tuple[dict[str, list[dict]], tuple, tuple]:
    """One load test shared by the four HTTP rows (run once per process): phases, loadavg before and after."""
    model, tok = pretrained.smollm2(), pretrained.smollm2_tokenizer()
    before = os.getloadavg()
    rows = load_tests(model, tok)
    print(format_phases(rows))
    return rows, before, os.getloadavg()


def _phase(rows: dict[str, list[dict]], engine: str, clients: int) -> dict:
    return next(p for p in rows[engine] if p["clients"] == clients)


def _http_result(ours: float, reference: float, unit: str, higher_is_better: bool, target: float,
                 reference_name: str, notes: str) -> BenchResult:
    rows, before, after = _measured()
    return BenchResult(ours, reference, unit, higher_is_better=higher_is_better, target=target,
                       reference_name=reference_name,
                       notes=f"{notes}; {MAX_TOKENS} greedy tokens per request; loadavg before {before[0]:.1f}",
                       extra={"phases": rows, "loadavg_before": before, "loadavg_after": after})


@benchmark("serving: continuous batching vs one-at-a-time queue, 16 streaming clients (SmolLM2, HTTP)")
def continuous_batching() -> BenchResult:
    rows = _measured()[0]
    return _http_result(_phase(rows, "batching-16", 16)["tokens_per_s"], _phase(rows, "queue-1", 16)["tokens_per_s"],
                        "tokens/s", True, 3.0, "the same engine with 1 slot (one request at a time)",
                        "aggregate tokens/s of 16 concurrent streams")


@benchmark("serving: tokens/s at 16 vs 1 streaming clients, continuous batching (SmolLM2, HTTP)")
def batching_scales() -> BenchResult:
    """Aggregate tokens/s with 16 clients against 1: one step reads the weights once for every busy slot."""
    rows = _measured()[0]
    return _http_result(_phase(rows, "batching-16", 16)["tokens_per_s"], _phase(rows, "batching-16", 1)["tokens_per_s"],
                        "tokens/s", True, 4.0, "the same server with 1 client",
                        "target 4: decode is memory-bound, so 16 rows per step must serve >= 4x the tokens of 1")


@benchmark("serving: TTFT p50 at 16 clients, continuous batching vs one-at-a-time queue (SmolLM2, HTTP)")
def time_to_first_token() -> BenchResult:
    """Median time to first token of 16 simultaneous requests: joined into the batch vs queued behind each other."""
    rows = _measured()[0]
    ours, ref = _phase(rows, "batching-16", 16), _phase(rows, "queue-1", 16)
    return _http_result(ours["ttft_p50"], ref["ttft_p50"], "s", False, 5.0,
                        "the same engine with 1 slot (one request at a time)",
                        f"TTFT p95 {ours['ttft_p95']:.2f} s vs {ref['ttft_p95']:.2f} s; 1 client: "
                        f"p50 {_phase(rows, 'batching-16', 1)['ttft_p50']:.2f} s")


@benchmark("serving: inter-token latency p95 at 16 vs 1 streaming clients, continuous batching (SmolLM2, HTTP)")
def inter_token_latency() -> BenchResult:
    """p95 gap between streamed chunks with 16 clients against 1: what batching costs each stream."""
    rows = _measured()[0]
    ours, ref = _phase(rows, "batching-16", 16), _phase(rows, "batching-16", 1)
    return _http_result(ours["itl_p95"], ref["itl_p95"], "s", False, 0.25, "the same server with 1 client",
                        f"target 0.25: a 16-row step may cost at most 4x a 1-row step; ITL p50 "
                        f"{ours['itl_p50']:.3f} s (16) vs {ref['itl_p50']:.3f} s (1), "
                        f"4 clients p50/p95 {_phase(rows, 'batching-16', 4)['itl_p50']:.3f}/"
                        f"{_phase(rows, 'batching-16', 4)['itl_p95']:.3f} s")


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
    return BenchResult(n / times["int8"], n / times["fp32"], "tokens/s", higher_is_better=True, target=1.0,
                       reference_name="fp32 SmolLM2, same decode loop",
                       notes=f"target 1: int8 reads ~40 % of the weight bytes per token; greedy agreement {statistics.mean(agree):.3f} over 4 prompts x {n} tokens",
                       extra={"agreement_per_prompt": agree, "weight_MiB_int8": weight_bytes(int8) / 2**20,
                              "weight_MiB_fp32": weight_bytes(fp32) / 2**20, "loadavg": os.getloadavg()})
