"""The OpenAI-compatible server with SmolLM2, through the real clients: openai (sync, async, streaming) and ChatOpenAI.

Every answer is checked against the plain decode loop (``course_lib.generation.generate``, greedy)
on the same model, so "the server works" means "the server returns what the model generates".
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest
import torch

from course_lib import pretrained
from course_lib.generation import generate
from course_lib.serving import MODEL_NAME

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served[0].base_url, api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def chat_answer(smollm2, smollm2_bpe):
    """The greedy answer to QUESTION (10 tokens at most) and its token count, by the plain decode loop."""
    return reference(smollm2, smollm2_bpe, pretrained.smollm2_chat_prompt(QUESTION), 10)


def reference(model, tok, prompt: str, n: int, stop: str | None = None) -> tuple[str, int]:
    """Greedy continuation by the plain decode loop, cut at EOS / <|endoftext|> (and at ``stop``): text, tokens."""
    ids = torch.tensor([tok.encode(prompt)])
    out = generate(model, ids, n, stop_tokens=[2, 0])[0, ids.shape[1]:].tolist()
    out = out[:next((i for i, t in enumerate(out) if t in (0, 2)), len(out))]
    text = tok.decode(out, skip_special_tokens=True)
    return (text.split(stop)[0] if stop else text), len(out)


def test_models_and_health(client, served):
    assert [m.id for m in client.models.list()] == [MODEL_NAME]
    assert client.models.retrieve(MODEL_NAME).id == MODEL_NAME
    health = httpx.get(served[0].url + "/health").json()
    assert health["status"] == "ok" and health["slots"] == 4


def test_chat_equals_plain_decode_loop(client, smollm2_bpe, chat_answer):
    want, n = chat_answer
    got = client.chat.completions.create(model=MODEL_NAME, messages=QUESTION, max_tokens=10, temperature=0)
    assert got.choices[0].message.content == want and got.choices[0].message.role == "assistant"
    assert got.choices[0].finish_reason == ("length" if n == 10 else "stop")
    prompt_tokens = len(smollm2_bpe.encode(pretrained.smollm2_chat_prompt(QUESTION)))
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (prompt_tokens, n)
    assert got.usage.total_tokens == prompt_tokens + n


def test_streaming_chunks_join_to_the_answer(client, chat_answer):
    want, n = chat_answer
    chunks = list(client.chat.completions.create(model=MODEL_NAME, messages=QUESTION, max_tokens=10, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == n
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_raw_sse_ends_with_done(served):
    body = {"model": MODEL_NAME, "prompt": "1, 2, 3,", "max_tokens": 4, "temperature": 0, "stream": True}
    with httpx.stream("POST", served[0].base_url + "/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    assert json.loads(lines[0][6:])["object"] == "text_completion"


def test_completion_with_stop_sequence(client, smollm2, smollm2_bpe):
    prompt = "The days of the week are Monday, Tuesday,"
    want, _ = reference(smollm2, smollm2_bpe, prompt, 12, stop=" Friday")
    got = client.completions.create(model=MODEL_NAME, prompt=prompt, max_tokens=12, temperature=0, stop=[" Friday"])
    assert got.choices[0].text == want and " Friday" not in got.choices[0].text
    assert got.choices[0].finish_reason == "stop"


def test_seed_makes_sampling_reproducible(client):
    def ask(seed):
        return client.completions.create(model=MODEL_NAME, prompt="Once upon a time", max_tokens=5, temperature=1.0,
                                         top_p=0.9, seed=seed).choices[0].text
    first = ask(1)
    assert ask(1) == first
    assert len({first, ask(2), ask(3)}) > 1


def test_async_client_concurrent_requests_equal_alone(served, smollm2, smollm2_bpe):
    prompts = ["Water boils at", "The largest planet is", "Python is a"]
    want = [reference(smollm2, smollm2_bpe, p, 6)[0] for p in prompts]

    async def main():
        async with openai.AsyncOpenAI(base_url=served[0].base_url, api_key="unused", max_retries=0) as aclient:
            calls = [aclient.completions.create(model=MODEL_NAME, prompt=p, max_tokens=6, temperature=0) for p in prompts]
            return [r.choices[0].text for r in await asyncio.gather(*calls)]
    assert asyncio.run(main()) == want


def test_langchain_chat_openai(served, chat_answer):
    from langchain_openai import ChatOpenAI

    want, _ = chat_answer
    llm = ChatOpenAI(model=MODEL_NAME, base_url=served[0].base_url, api_key="unused", temperature=0, max_tokens=10,
                     max_retries=0)
    assert llm.invoke(QUESTION[0]["content"]).content == want
    assert "".join(chunk.content for chunk in llm.stream(QUESTION[0]["content"])) == want


@pytest.mark.parametrize(("body", "status", "param", "code"), [
    ("{not json", 400, None, None),
    ({"model": "gpt-9", "messages": QUESTION}, 404, "model", "model_not_found"),
    ({"model": MODEL_NAME, "messages": QUESTION, "temperature": 3}, 400, "temperature", None),
    ({"model": MODEL_NAME, "messages": QUESTION, "top_p": 0}, 400, "top_p", None),
    ({"model": MODEL_NAME, "messages": QUESTION, "max_tokens": 0}, 400, "max_tokens", None),
    ({"model": MODEL_NAME, "messages": QUESTION, "max_tokens": "many"}, 400, "max_tokens", None),
    ({"model": MODEL_NAME, "messages": QUESTION, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop", None),
    ({"model": MODEL_NAME, "messages": QUESTION, "n": 2}, 400, "n", "unsupported_parameter"),
    ({"model": MODEL_NAME, "messages": []}, 400, "messages", None),
    ({"model": MODEL_NAME, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages.0.role", None),
    ({"model": MODEL_NAME}, 400, "messages", None),
    ({"model": MODEL_NAME, "messages": [{"role": "user", "content": "word " * 600}]}, 400, "messages",
     "context_length_exceeded"),
])
def test_bad_requests_get_openai_error_bodies(served, body, status, param, code):
    content = body if isinstance(body, str) else json.dumps(body)
    r = httpx.post(served[0].base_url + "/chat/completions", content=content,
                   headers={"content-type": "application/json"})
    error = r.json()["error"]
    assert r.status_code == status and error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code) and error["message"]


def test_openai_client_raises_its_own_errors(client):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-9", messages=QUESTION)
    with pytest.raises(openai.BadRequestError, match="context"):
        client.completions.create(model=MODEL_NAME, prompt="word " * 600, max_tokens=1)


def test_disconnect_mid_stream_frees_the_slot_and_spares_the_others(served, smollm2, smollm2_bpe):
    server, engine = served
    other_prompt = "Three primary colours are"
    want, _ = reference(smollm2, smollm2_bpe, other_prompt, 6)

    async def main():
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
            other = asyncio.create_task(http.post("/completions", json={
                "model": MODEL_NAME, "prompt": other_prompt, "max_tokens": 6, "temperature": 0}))
            steps = engine.steps
            body = {"model": MODEL_NAME, "prompt": "Tell me a long story.", "max_tokens": 400, "stream": True}
            async with http.stream("POST", "/completions", json=body) as r:
                seen = 0
                async for line in r.aiter_lines():
                    seen += line.startswith("data: ")
                    if seen == 3:
                        break  # leaving the block closes the connection mid-stream
            return await other, steps

    response, steps_before = asyncio.run(main())
    assert response.json()["choices"][0]["text"] == want
    for _ in range(200):  # the engine retires the request at its next step
        if engine.stats()["busy_slots"] == 0:
            break
        time.sleep(0.05)
    assert engine.stats()["busy_slots"] == 0
    assert engine.steps - steps_before < 100  # far fewer than the 400 tokens asked for


def test_cli_serves_and_sigterm_ends_it_whatever_is_in_flight():
    """``python -m course_lib.serving``: answers /health and a completion; SIGTERM with a stream, a 1 MB body and a
    long tokenisation in flight still shuts down within uvicorn's graceful timeout (5 s) plus the engine's last step."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "course_lib.serving", "--port", str(port), "--slots", "2",
                             "--max-len", "128"], env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(url + "/health").json()["slots"] == 2:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        got = httpx.post(url + "/v1/completions", timeout=60, json={"model": MODEL_NAME, "prompt": "Hello",
                                                                    "max_tokens": 2, "temperature": 0}).json()
        assert got["usage"]["completion_tokens"] >= 1

        def post(**body):
            try:
                with httpx.stream("POST", url + "/v1/chat/completions", timeout=60, json={
                        "model": MODEL_NAME, "max_tokens": 100, **body}) as r:
                    for _ in r.iter_lines():
                        pass
            except httpx.HTTPError:
                pass  # the server went away mid-answer

        in_flight = [threading.Thread(target=post, kwargs=kw, daemon=True) for kw in (
            {"messages": QUESTION, "stream": True},
            {"messages": [{"role": "user", "content": "z" * 1_000_000}]},
            {"messages": [{"role": "user", "content": "z" * 10_000}]})]  # under the cap: tokenised in a thread
        for thread in in_flight:
            thread.start()
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == -signal.SIGTERM  # uvicorn shuts down, then re-raises the signal it caught
        assert time.monotonic() - sent < 15
        log = proc.stdout.read()
        assert b"Shutting down" in log and b"Application shutdown complete" in log  # graceful: the engine stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
