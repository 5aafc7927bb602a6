"""An OpenAI-compatible HTTP API over the continuous-batching :class:`~course_lib.serving.engine.Engine`.

Routes follow the OpenAI API reference (platform.openai.com/docs/api-reference), so the official
``openai`` client, LangChain's ``ChatOpenAI`` or ``curl`` talk to it unchanged:

- ``GET /v1/models``, ``GET /v1/models/{id}``: the one served model;
- ``POST /v1/chat/completions``: ``messages`` (every OpenAI role: ``developer`` as system, an
  assistant's ``tool_calls`` and ``tool`` results as text turns, :func:`course_lib.text_decoding.to_template_messages`)
  rendered by the model's chat template; special-token strings inside contents stay text
  (:func:`~course_lib.tokenizers.chat_template.encode_chat`), so a user cannot forge a turn;
- ``POST /v1/completions``: a raw ``prompt`` (special tokens in it are the real ones, as in vLLM);
- both take ``max_tokens`` / ``max_completion_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``,
  ``stream`` (server-sent events: ``data: {chunk}`` lines, then ``data: [DONE]``;
  ``stream_options.include_usage``) and return ``usage``; unsupported parameters get a 400 (:mod:`.protocol`);
- ``GET /health``: ``{"status": "ok", slots, busy_slots, ...}``, or 503 when the engine is not running.

Errors are OpenAI's body (:mod:`.errors`): bad parameters 400 (``invalid_request_error``), an
unknown model 404 (``model_not_found``), a prompt that does not fit a slot 400
(``context_length_exceeded``), a body over ``max_body_bytes`` 413, a request the engine failed
500 (``server_error``; mid-stream: an SSE ``{"error": ...}`` event). Tokenising runs in a worker
thread, never on the event loop. A client that disconnects (streaming or not) cancels its
request; the engine frees the slot at its next step. The engine thread starts and stops with the
app's lifespan (uvicorn's graceful shutdown).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from course_lib.serving.engine import ContextLengthError, Engine
from course_lib.serving.errors import APIError, ASCIIJSONResponse, BodyLimit, install_error_handlers
from course_lib.serving.protocol import ChatRequest, CompletionRequest, Params
from course_lib.text_decoding import to_template_messages
from course_lib.tokenizers.chat_template import encode_chat

MAX_BODY_BYTES = 1 << 20  # 1 MiB: far above any prompt that fits SmolLM2's 8k context


def _sse(payload) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def _failure(req) -> APIError | None:
    """The error a finished request reports, if it did not end normally."""
    if req.finish_reason == "error":
        return APIError(500, f"the engine failed on this request: {req.error}", "server_error", code="engine_error")
    if req.finish_reason not in ("stop", "length"):
        return APIError(503, "the server is shutting down", "server_error", code="aborted")
    return None


async def _in_thread(fn):
    """``fn()`` in a daemon thread (tokenising must not block the loop; a daemon never delays exit)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def run():
        try:
            outcome = (True, fn())
        except BaseException as exc:  # delivered to the awaiting coroutine
            outcome = (False, exc)

        def deliver():
            ok, value = outcome
            if future.cancelled():  # the handler is gone: a submitted request must not hold a slot
                if ok and hasattr(value, "cancel"):
                    value.cancel()
            elif ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the loop has closed
            if outcome[0] and hasattr(outcome[1], "cancel"):
                outcome[1].cancel()

    threading.Thread(target=run, name="serving-tokenize", daemon=True).start()
    return await future


async def _until_done_or_gone(http: Request, req) -> bool:
    """Wait for ``req`` to finish; False (and the request cancelled) when the client disconnects first."""
    async def drain():
        async for _ in req.astream():
            pass

    async def gone():
        while (await http.receive())["type"] != "http.disconnect":
            pass

    done_task, gone_task = asyncio.create_task(drain()), asyncio.create_task(gone())
    try:
        await asyncio.wait({done_task, gone_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        done_task.cancel()
        gone_task.cancel()
        req.cancel()  # a no-op once finished; frees the slot if the client left or this handler was cancelled
    return done_task.done() and not done_task.cancelled()


def create_app(engine: Engine, model_name: str = "smollm2-135m-instruct", chat_prompt=None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI app serving ``engine`` under ``model_name``.

    ``chat_prompt(messages) -> str`` renders a conversation (default: SmolLM2's chat template,
    :func:`course_lib.pretrained.smollm2_chat_prompt`); bodies over ``max_body_bytes`` get a 413.
    """
    if chat_prompt is None:
        from course_lib.pretrained import smollm2_chat_prompt as chat_prompt

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title="course_lib OpenAI-compatible server", lifespan=lifespan,
                  default_response_class=ASCIIJSONResponse)
    app.state.engine, app.state.model_name = engine, model_name
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    def check_model(name: str) -> None:
        if name != model_name:
            raise APIError(404, f"The model '{name}' does not exist; this server serves '{model_name}'",
                           param="model", code="model_not_found")

    def card() -> dict:
        return {"id": model_name, "object": "model", "created": 0, "owned_by": "course_lib"}

    @app.get("/health")
    async def health():
        if not engine.alive:
            return ASCIIJSONResponse({"status": "unavailable", "error": engine.error, **engine.stats()},
                                     status_code=503)
        return {"status": "ok", **engine.stats()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [card()]}

    @app.get("/v1/models/{name}")
    async def model(name: str):
        check_model(name)
        return card()

    async def serve(http: Request, body: Params, prompt, param: str, chat: bool):
        """``prompt()`` (run in a thread) gives the text or ids to submit; errors name ``param``."""
        check_model(body.model)
        params = body.sampling()
        loop = asyncio.get_running_loop()
        try:
            req = await _in_thread(lambda: engine.submit(prompt(), params, loop=loop))
        except ContextLengthError as e:
            raise APIError(400, str(e), param=param, code="context_length_exceeded") from None
        except (ValueError, TypeError) as e:  # e.g. text with no UTF-8 form (a lone surrogate)
            raise APIError(400, str(e), param=param) from None
        except RuntimeError as e:  # the engine is not running
            raise APIError(503, str(e), "server_error", code="engine_unavailable") from None
        kind = "chat.completion" if chat else "text_completion"
        head = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{req.id}", "created": int(time.time()), "model": model_name}

        def choice(text: str | None, finish: str | None, first: bool = False) -> dict:
            if not chat:
                return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            delta = ({"role": "assistant"} if first else {}) | ({} if text is None else {"content": text})
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        if not body.stream:
            if not await _until_done_or_gone(http, req):
                raise APIError(499, "the client closed the request", code="client_closed_request")
            if (error := _failure(req)) is not None:
                raise error
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
                if (error := _failure(req)) is not None:  # OpenAI's mid-stream error event
                    yield _sse(error.body)
                    return
                yield _sse({**chunk, "choices": [choice(None if chat else "", req.finish_reason)]})
                if usage_chunk:
                    yield _sse({**chunk, "choices": [], "usage": req.usage})
                yield _sse("[DONE]")
            finally:  # the client went away (or the stream ended): free the slot
                req.cancel()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, http: Request):
        messages = [m.as_dict(i) for i, m in enumerate(body.messages)]
        limit = engine.max_prompt_chars
        if limit is not None and sum(len(m["content"] or "") for m in messages) > limit:
            raise APIError(400, f"the messages are longer than {limit} characters, more than the context of "
                           f"{engine.max_len} tokens can hold", param="messages", code="context_length_exceeded")

        def prompt_ids() -> list[int]:
            try:
                turns = to_template_messages(messages)  # the one message check, as in course_lib.chat
            except (ValueError, TypeError, KeyError) as e:  # e.g. tool_calls arguments that are not JSON
                raise APIError(400, f"invalid messages: {e}", param="messages") from None
            return encode_chat(engine.tokenizer, turns, chat_prompt)

        return await serve(http, body, prompt_ids, "messages", True)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, http: Request):
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1 or not prompts[0]:
            raise APIError(400, "prompt must be one non-empty string", param="prompt")
        return await serve(http, body, lambda: prompts[0], "prompt", False)

    return app
