"""The server under hostile input (issue 23), with a tiny random LLaMA: nothing hangs it, kills it or stalls it.

Every case runs against the real server (uvicorn on loopback) through raw HTTP or the ``openai``
client, except the property test, which drives the engine directly. Greedy answers are checked
against the plain decode loop on the request alone (``alone``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import openai
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.generation import generate
from course_lib.serving import Engine, SamplingParams, serve_in_background
from course_lib.serving import engine as engine_module

MODEL = "smollm2-135m-instruct"
PROMPT = "Request 7: tell me about topic number 49"


@pytest.fixture(scope="module")
def served(tiny_llama, smollm2_bpe):
    engine = Engine(tiny_llama, smollm2_bpe, slots=4, max_len=256, stop_token_ids=())  # never stops early
    with serve_in_background(engine) as server:
        yield server, engine


def alone(model, tok, prompt: str, n: int) -> str:
    """Greedy text of ``prompt`` by the plain decode loop (no stop tokens, like the ``served`` engine)."""
    ids = torch.tensor([tok.encode(prompt)])
    return tok.decode(generate(model, ids, n)[0, ids.shape[1]:].tolist(), skip_special_tokens=True)


def finishes(request, timeout: float = 30.0) -> bool:
    """Whether ``request`` (a blocking engine request) ends within ``timeout`` s (a hang fails, not blocks)."""
    thread = threading.Thread(target=lambda: list(request), daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def error_of(response: httpx.Response) -> dict:
    """The OpenAI error body of ``response`` (its four keys checked)."""
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def test_a_failing_request_ends_alone_and_the_engine_serves_on(served, tiny_llama, smollm2_bpe, monkeypatch):
    server, engine = served
    real = engine_module.sample_next_token

    def poisoned(logits, temperature, *args):
        if temperature == 1.25:
            raise RuntimeError("poisoned sampler")
        return real(logits, temperature, *args)

    monkeypatch.setattr(engine_module, "sample_next_token", poisoned)
    bad, good = SamplingParams(max_tokens=8, temperature=1.25), SamplingParams(max_tokens=8, temperature=0)
    requests = [engine.submit(PROMPT, good if i % 2 else bad) for i in range(4)]  # batched together
    assert all(finishes(r) for r in requests)
    assert [r.finish_reason for r in requests] == ["error", "length"] * 2
    assert "poisoned sampler" in requests[0].error and requests[1].text == alone(tiny_llama, smollm2_bpe, PROMPT, 8)

    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=30)
    with pytest.raises(openai.InternalServerError, match="poisoned sampler") as raised:
        client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=1.25)
    assert raised.value.body["type"] == "server_error" and raised.value.body["code"] == "engine_error"
    with pytest.raises(openai.APIError, match="poisoned sampler"):  # mid-stream: an SSE error event
        list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=8, temperature=1.25, stream=True))
    got = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0)
    assert got.choices[0].text == requests[1].text
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


class EngineCrash(BaseException):
    """Not an ``Exception``: escapes the per-request handlers and kills the engine thread."""


def test_a_dead_engine_is_unhealthy_and_nobody_hangs(tiny_llama, smollm2_bpe, monkeypatch):
    engine = Engine(tiny_llama, smollm2_bpe, slots=2, max_len=64)
    with serve_in_background(engine) as server:
        assert httpx.get(server.url + "/health").status_code == 200

        def crash(*args):
            raise EngineCrash("the decode step blew up")

        monkeypatch.setattr(engine.cache, "decode", crash)
        body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 5, "temperature": 0}
        r = httpx.post(server.base_url + "/completions", json=body, timeout=30)
        assert r.status_code == 500 and error_of(r)["code"] == "engine_error"
        assert "blew up" in error_of(r)["message"]
        health = httpx.get(server.url + "/health")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        assert "EngineCrash" in health.json()["error"]
        r = httpx.post(server.base_url + "/completions", json=body, timeout=30)
        assert r.status_code == 503 and error_of(r)["code"] == "engine_unavailable"


@pytest.mark.parametrize("temperature", [1e-40, 5e-324, 1e-45])
def test_a_temperature_too_small_to_sample_is_greedy(served, tiny_llama, smollm2_bpe, temperature):
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 6, "temperature": temperature, "top_p": 0.5}
    r = httpx.post(served[0].base_url + "/completions", json=body, timeout=30)
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == alone(tiny_llama, smollm2_bpe, PROMPT, 6)


@pytest.fixture(scope="module")
def engine(tiny_llama, smollm2_bpe):
    with Engine(tiny_llama, smollm2_bpe, slots=3, max_len=48) as engine:
        yield engine


temperatures = st.one_of(st.floats(0, 2), st.sampled_from([0.0, 5e-324, 1e-45, 1e-40, 1e-38, 1e-30, 1e-8, 2.0]))
sampling = st.builds(SamplingParams, max_tokens=st.none() | st.integers(1, 8), temperature=temperatures,
                     top_p=st.floats(0, 1, exclude_min=True) | st.sampled_from([5e-324, 1e-30, 1.0]),
                     seed=st.none() | st.integers(-2**63, 2**64 - 1),
                     stop=st.lists(st.text(min_size=1, max_size=3), max_size=4).map(tuple))


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(sampling, min_size=1, max_size=3), prompt=st.sampled_from(["Hi", PROMPT, "数 1 2 3"]))
def test_every_in_range_sampling_request_finishes(engine, batch, prompt):
    requests = [engine.submit(prompt, params) for params in batch]  # decoded together
    assert all(finishes(r) for r in requests)
    for r, params in zip(requests, batch):
        assert r.finish_reason in ("stop", "length") and r.error is None
        assert 1 <= len(r.token_ids) <= (params.max_tokens or engine.default_max_tokens)
    assert engine.alive


def test_a_megabyte_without_spaces_is_refused_fast_while_others_stream(served, smollm2_bpe):
    server, _ = served
    limit = 256 * max(map(len, smollm2_bpe.vocab))  # positions x the longest token: no longer text can fit

    async def main():
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
            arrivals, first = [], asyncio.Event()

            async def stream():
                body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 200, "temperature": 0, "stream": True}
                async with http.stream("POST", "/completions", json=body) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: {"):
                            arrivals.append(time.monotonic())
                            first.set()

            async def timed(**body):
                start = time.monotonic()
                r = await http.post("/chat/completions", json={"model": MODEL, "max_tokens": 1, **body})
                return r, time.monotonic() - start

            streaming = asyncio.create_task(stream())
            await first.wait()
            message = [{"role": "user", "content": "a" * (limit - 100)}]  # under the cap: tokenised (in a thread)
            results = await asyncio.gather(timed(messages=[{"role": "user", "content": "a" * 1_000_000}]),
                                           timed(messages=[{"role": "user", "content": "a" * 2_000_000}]),
                                           timed(messages=message))
            await streaming
            return results, arrivals

    (one_mb, two_mb, near), arrivals = asyncio.run(main())
    assert one_mb[0].status_code == 400 and error_of(one_mb[0])["code"] == "context_length_exceeded"
    assert error_of(one_mb[0])["param"] == "messages" and one_mb[1] < 1.0
    assert two_mb[0].status_code == 413 and error_of(two_mb[0])["code"] == "request_too_large" and two_mb[1] < 1.0
    assert near[0].status_code == 400 and error_of(near[0])["code"] == "context_length_exceeded"
    assert len(arrivals) == 201 and max(b - a for a, b in zip(arrivals, arrivals[1:])) < 1.0  # never stalled


def test_an_abandoned_request_is_cancelled_and_frees_its_slot(served, tiny_llama, monkeypatch):
    server, engine = served
    slow = tiny_llama.decode_rows

    def decode_rows(*args, **kwargs):  # 20 ms a step: 200 tokens take 4 s or more
        time.sleep(0.02)
        return slow(*args, **kwargs)

    monkeypatch.setattr(tiny_llama, "decode_rows", decode_rows)
    steps = engine.steps
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 200, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.base_url + "/completions", json=body, timeout=0.5)
    gave_up = time.monotonic()
    while engine.stats()["busy_slots"] and time.monotonic() - gave_up < 2.0:
        time.sleep(0.02)
    assert engine.stats()["busy_slots"] == 0 and engine.steps - steps < 120


SURROGATE = '"\\ud800"'  # JSON text for a lone surrogate


@pytest.mark.parametrize(("body", "status", "param", "code"), [
    ({"logprobs": True}, 400, "logprobs", "unsupported_parameter"),
    ({"top_logprobs": 2}, 400, "top_logprobs", "unsupported_parameter"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, 400, "tools",
     "unsupported_parameter"),
    ({"tool_choice": "auto"}, 400, "tool_choice", "unsupported_parameter"),
    ({"response_format": {"type": "json_object"}}, 400, "response_format", "unsupported_parameter"),
    ({"n": 2}, 400, "n", "unsupported_parameter"),
    ({"max_completion_tokens": 0}, 400, "max_completion_tokens", None),
    ({"max_tokens": 0}, 400, "max_tokens", None),
    ({"seed": 2**70}, 400, "seed", None),
    ({"model": "\ud800"}, 404, "model", "model_not_found"),
    ({"messages": [{"role": "user", "content": "hi \ud800"}]}, 400, "messages", None),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, 400,
     "messages.0.content", "unsupported_content"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}, 400, "messages",
     None),
    ({"messages": [{"role": "user", "content": None}]}, 400, "messages", None),
])
def test_bad_requests_get_openai_errors_naming_the_cause(served, body, status, param, code):
    full = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **body}
    r = httpx.post(served[0].base_url + "/chat/completions", content=json.dumps(full),  # ASCII, \ud800 escaped
                   headers={"content-type": "application/json"}, timeout=30)
    error = error_of(r)
    assert (r.status_code, error["param"], error["code"]) == (status, param, code)
    assert error["type"] == "invalid_request_error"


def test_unused_values_of_unsupported_parameters_pass(served):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 2,
            "logprobs": False, "tool_choice": "none", "response_format": {"type": "text"}, "presence_penalty": 0,
            "user": "someone"}
    r = httpx.post(served[0].base_url + "/chat/completions", json=body, timeout=30)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize(("method", "path", "content", "status", "param"), [
    ("POST", "/v1/completions", '{"model": "smollm2-135m-instruct", "prompt": ' + SURROGATE + "}", 400, "prompt"),
    ("POST", "/v1/completions", b'{"model": "\xff\xfe"}', 400, None),  # not UTF-8
    ("GET", "/v1/models/" + "%ED%A0%80", None, 404, "model"),  # a lone surrogate's UTF-8 bytes in the path
    ("GET", "/nowhere", None, 404, None),
    ("PUT", "/v1/completions", None, 405, None),
])
def test_every_error_is_openai_json(served, method, path, content, status, param):
    r = httpx.request(method, served[0].url + path, content=content, headers={"content-type": "application/json"},
                      timeout=30)
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    error = error_of(r)
    assert error["param"] == param and error["code"] != "context_length_exceeded"


def test_an_unexpected_exception_is_an_openai_500(served, monkeypatch):
    def broken():
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(served[1], "stats", broken)
    r = httpx.get(served[0].url + "/health", timeout=30)
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert error_of(r)["type"] == "server_error" and "ZeroDivisionError" in error_of(r)["message"]
