"""An OpenAI-compatible HTTP API over the continuous-batching :class:`~course_lib.serving.engine.Engine`.

Routes follow the OpenAI API reference (platform.openai.com/docs/api-reference), so the official
``openai`` client, LangChain's ``ChatOpenAI`` or ``curl`` talk to it unchanged:

- ``GET /v1/models``, ``GET /v1/models/{id}``: the one served model;
- ``POST /v1/chat/completions``: ``messages`` rendered by the model's chat template;
- ``POST /v1/completions``: a raw ``prompt``;
- both take ``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``, ``stream`` (server-sent
  events: ``data: {chunk}`` lines, then ``data: [DONE]``; ``stream_options.include_usage``) and return ``usage``;
- ``GET /health``: ``{"status": "ok", slots, busy_slots, free_slots, waiting, steps}``.

Errors are OpenAI's body ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status:
malformed JSON and bad parameters 400 (``invalid_request_error``), an unknown model 404
(``model_not_found``), a prompt that does not fit a slot 400 (``context_length_exceeded``). A
streaming client that disconnects cancels its request; the engine frees the slot at its next step.
The engine thread starts and stops with the app's lifespan (uvicorn's graceful shutdown).
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from course_lib.serving.engine import Engine
from course_lib.serving.params import SamplingParams


class APIError(Exception):
    """An OpenAI-style error: HTTP ``status`` and the body's message, type, param, code."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.body = status, {"error": {"message": message, "type": type_, "param": param, "code": code}}


class _Params(BaseModel):
    """Fields both endpoints share; unknown OpenAI fields (``presence_penalty``, ``user``...) are ignored."""
    model_config = ConfigDict(extra="allow")
    model: str
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False
    stream_options: dict | None = None


class Message(BaseModel):
    """One chat message of an OpenAI request: role and content (a string or a list of content parts)."""
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict] | None = None

    def text(self) -> str:
        """The content as one string (text parts of a list joined)."""
        if isinstance(self.content, list):
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatRequest(_Params):
    """Body of ``POST /v1/chat/completions`` (OpenAI API reference): the messages and sampling parameters."""
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(_Params):
    """Body of ``POST /v1/completions`` (OpenAI API reference): a raw prompt and sampling parameters."""
    prompt: str | list[str]


def _sampling(body: _Params) -> SamplingParams:
    if body.n != 1:
        raise APIError(400, f"only n=1 is supported, got n={body.n}", param="n")
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    try:
        return SamplingParams(body.max_completion_tokens or body.max_tokens, body.temperature, body.top_p,
                              body.seed, stop)
    except ValueError as e:
        raise APIError(400, str(e), param=str(e).split(" ", 1)[0]) from None


def _sse(payload) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def create_app(engine: Engine, model_name: str = "smollm2-135m-instruct", chat_prompt=None) -> FastAPI:
    """The FastAPI app serving ``engine`` under ``model_name``.

    ``chat_prompt(messages) -> str`` renders a conversation (default: SmolLM2's chat template,
    :func:`course_lib.pretrained.smollm2_chat_prompt`).
    """
    if chat_prompt is None:
        from course_lib.pretrained import smollm2_chat_prompt as chat_prompt

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title="course_lib OpenAI-compatible server", lifespan=lifespan)
    app.state.engine, app.state.model_name = engine, model_name

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError):
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            message, param = f"We could not parse the JSON body of your request: {first.get('msg')}", None
        else:
            where = [str(x) for x in first.get("loc", ()) if x != "body"]
            param = ".".join(where) or None
            message = f"Invalid value for '{param}': {first.get('msg')}" if param else str(first.get("msg"))
        return JSONResponse(APIError(400, message, param=param).body, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException):
        return JSONResponse(APIError(exc.status_code, str(exc.detail)).body, status_code=exc.status_code)

    def check_model(name: str) -> None:
        if name != model_name:
            raise APIError(404, f"The model '{name}' does not exist; this server serves '{model_name}'",
                           param="model", code="model_not_found")

    def card() -> dict:
        return {"id": model_name, "object": "model", "created": 0, "owned_by": "course_lib"}

    @app.get("/health")
    async def health():
        return {"status": "ok", **engine.stats()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [card()]}

    @app.get("/v1/models/{name}")
    async def model(name: str):
        check_model(name)
        return card()

    async def serve(body: _Params, prompt: str, param: str, chat: bool):
        check_model(body.model)
        params = _sampling(body)
        try:
            req = engine.submit(prompt, params, loop=asyncio.get_running_loop())
        except ValueError as e:
            raise APIError(400, str(e), param=param, code="context_length_exceeded") from None
        kind = "chat.completion" if chat else "text_completion"
        head = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{req.id}", "created": int(time.time()), "model": model_name}

        def choice(text: str | None, finish: str | None, first: bool = False) -> dict:
            if not chat:
                return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            delta = ({"role": "assistant"} if first else {}) | ({} if text is None else {"content": text})
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        if not body.stream:
            try:
                async for _ in req.astream():
                    pass
            finally:
                req.cancel()  # a no-op once finished; frees the slot if this handler was cancelled
            if req.finish_reason not in ("stop", "length"):
                raise APIError(503, "the server is shutting down", type_="server_error", code="aborted")
            result = ({"index": 0, "message": {"role": "assistant", "content": req.text}, "logprobs": None,
                       "finish_reason": req.finish_reason} if chat else choice(req.text, req.finish_reason))
            return {**head, "object": kind, "choices": [result], "usage": req.usage}

        usage_chunk = bool((body.stream_options or {}).get("include_usage"))

        async def events():
            try:
                chunk = {**head, "object": kind + ".chunk" if chat else kind}
                if chat:
                    yield _sse({**chunk, "choices": [choice("", None, first=True)]})
                async for piece in req.astream():
                    yield _sse({**chunk, "choices": [choice(piece, None)]})
                yield _sse({**chunk, "choices": [choice(None if chat else "", req.finish_reason)]})
                if usage_chunk:
                    yield _sse({**chunk, "choices": [], "usage": req.usage})
                yield _sse("[DONE]")
            finally:  # the client went away (or the stream ended): free the slot
                req.cancel()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest):
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                    for m in body.messages]
        return await serve(body, chat_prompt(messages), "messages", True)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1 or not prompts[0]:
            raise APIError(400, "prompt must be one non-empty string", param="prompt")
        return await serve(body, prompts[0], "prompt", False)

    return app
