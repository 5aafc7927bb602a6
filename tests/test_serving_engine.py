"""Continuous batching, a tiny random LLaMA (``tiny_llama``) + SmolLM2's tokenizer: 16 streams = each alone.

The reference for every request is the plain decode loop ``generate`` on that request alone.
"""

from __future__ import annotations

import asyncio
import threading

import openai
import pytest
import torch

from course_lib.generation import generate
from course_lib.serving import Engine, SamplingParams, serve_in_background

PROMPTS = [f"Request {i}: " + "tell me about " * (i % 5) + f"topic number {i * 7}" for i in range(16)]


def alone(model, tok, prompt: str, n: int) -> str:
    """Greedy text of ``prompt`` decoded alone by ``generate``, cut at the engine's stop tokens (2, 0)."""
    ids = torch.tensor([tok.encode(prompt)])
    out = generate(model, ids, n)[0, ids.shape[1]:].tolist()
    out = out[:next((i for i, t in enumerate(out) if t in (0, 2)), len(out))]
    return tok.decode(out, skip_special_tokens=True)


def test_16_concurrent_streaming_clients_equal_each_alone(tiny_llama, smollm2_bpe):
    want = [alone(tiny_llama, smollm2_bpe, p, 24) for p in PROMPTS]
    assert len(set(want)) == 16 and min(map(len, want)) > 10  # distinct, non-trivial continuations
    engine = Engine(tiny_llama, smollm2_bpe, slots=16, max_len=128)
    with serve_in_background(engine) as server:
        async def one(aclient, prompt):
            stream = await aclient.completions.create(model="smollm2-135m-instruct", prompt=prompt, max_tokens=24,
                                                      temperature=0, stream=True)
            return "".join([chunk.choices[0].text async for chunk in stream])

        async def main():
            async with openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as aclient:
                return await asyncio.gather(*(one(aclient, p) for p in PROMPTS))
        got = asyncio.run(main())
        assert engine.stats()["busy_slots"] == 0
        port = server.port
    alive = [t.name for t in threading.enumerate()]
    assert f"uvicorn-{port}" not in alive and "serving-engine" not in alive  # shut down, threads joined
    assert got == want
    assert engine.steps < 16 * 24 / 4  # batched: far fewer steps than one request at a time


def test_one_slot_queue_and_batched_engine_agree(tiny_llama, smollm2_bpe):
    params = SamplingParams(max_tokens=10, temperature=0)
    with Engine(tiny_llama, smollm2_bpe, slots=1, max_len=64) as queue_engine:
        queued = [queue_engine.submit(p, params) for p in PROMPTS[:4]]
        queued_text = ["".join(r) for r in queued]
        assert queue_engine.steps >= sum(len(r.token_ids) - 1 for r in queued)  # one request per step
    with Engine(tiny_llama, smollm2_bpe, slots=4, max_len=64) as engine:
        batched = [engine.submit(p, params) for p in PROMPTS[:4]]
        assert ["".join(r) for r in batched] == queued_text
    assert [r.usage for r in batched] == [r.usage for r in queued]
    assert queued_text == [alone(tiny_llama, smollm2_bpe, p, 10) for p in PROMPTS[:4]]


def test_seeded_sampling_is_per_request(tiny_llama, smollm2_bpe):
    """A seeded request draws the same tokens alone or next to others (its own torch.Generator)."""
    seeded = SamplingParams(max_tokens=8, temperature=1.0, top_p=0.95, seed=7)
    with Engine(tiny_llama, smollm2_bpe, slots=4, max_len=64) as engine:
        solo = engine.complete(PROMPTS[0], seeded).token_ids
        crowd = [engine.submit(p, SamplingParams(max_tokens=8, temperature=1.0)) for p in PROMPTS[1:4]]
        again = engine.complete(PROMPTS[0], seeded).token_ids
        for r in crowd:
            list(r)
    assert again == solo


def test_cancel_stop_and_abort(tiny_llama, smollm2_bpe):
    engine = Engine(tiny_llama, smollm2_bpe, slots=1, max_len=64)
    with pytest.raises(RuntimeError, match="not running"):
        engine.submit("hi")
    with engine:
        first = engine.submit(PROMPTS[0], SamplingParams(max_tokens=40, temperature=0))
        second = engine.submit(PROMPTS[1], SamplingParams(max_tokens=40, temperature=0))
        first.cancel()
        list(first)
        assert first.finish_reason == "cancelled" and len(first.token_ids) < 40
        with pytest.raises(ValueError, match="does not fit the context of 64"):
            engine.submit("word " * 70)
        with pytest.raises(ValueError, match="does not fit"):
            engine.submit("hi", SamplingParams(max_tokens=64))
        third = engine.submit(PROMPTS[2], SamplingParams(max_tokens=40, temperature=0))
        list(second)
    list(third)  # the engine stopped before or while it ran
    assert second.finish_reason in ("length", "stop") and third.finish_reason in ("abort", "length", "stop")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_tokens": 0}, "max_tokens must be a positive int"),
    ({"max_tokens": 2.5}, "max_tokens must be a positive int"),
    ({"temperature": -1}, r"temperature must be a number in \[0, 2\]"),
    ({"temperature": True}, "temperature must be a number"),
    ({"top_p": 1.5}, r"top_p must be a number in \(0, 1\]"),
    ({"seed": "x"}, "seed must be an int or None"),
    ({"stop": ["a"]}, "stop must be a tuple"),
    ({"stop": ("",)}, "stop must be a tuple of at most 4 non-empty strings"),
])
def test_sampling_params_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingParams(**kwargs)
