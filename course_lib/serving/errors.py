"""OpenAI-shaped errors for every failure of the server, and a cap on the request body.

Every error body is OpenAI's ``{"error": {"message", "type", "param", "code"}}`` (API reference,
"Error codes"), whatever raised it: our :class:`APIError`, a validation error (400), a route that
does not exist (404/405), a body over the cap (413) or an exception nobody expected (500,
``server_error``). Bodies are written as ASCII JSON, so text echoed from a request (a lone
surrogate such as ``"\\ud800"`` in ``model``) can never break the encoding of the answer.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException


class APIError(Exception):
    """An OpenAI-style error: HTTP ``status`` and the body's message, type, param, code."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.body = status, {"error": {"message": message, "type": type_, "param": param, "code": code}}


class ASCIIJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped (``\\uXXXX``): a lone surrogate cannot fail to encode."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_response(error: APIError) -> ASCIIJSONResponse:
    """The HTTP response carrying ``error``."""
    return ASCIIJSONResponse(error.body, status_code=error.status)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` an OpenAI error body (see the module docstring)."""

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError):
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            message, param = f"We could not parse the JSON body of your request: {first.get('msg')}", None
        else:
            where = [str(x) for x in first.get("loc", ()) if x != "body"]
            param = ".".join(where) or None
            message = f"Invalid value for '{param}': {first.get('msg')}" if param else str(first.get("msg"))
        return error_response(APIError(400, message, param=param))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(APIError(exc.status_code, str(exc.detail), code=code))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception):  # a bug: still OpenAI's shape, never a text/plain 500
        return error_response(APIError(500, f"internal server error ({type(exc).__name__})", "server_error",
                                       code="internal_error"))


class BodyLimit:
    """ASGI middleware: refuse a request body over ``max_bytes`` with 413 before anything parses it.

    A ``Content-Length`` over the cap is refused unread; a chunked body is read up to the cap. The
    body read is then replayed to the app, and later ``receive`` calls (a client disconnecting) pass through.
    """

    def __init__(self, app, max_bytes: int):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self) -> ASCIIJSONResponse:
        return error_response(APIError(413, f"the request body is larger than {self.max_bytes} bytes",
                                       code="request_too_large"))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or ()).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_bytes:
            return await self._too_large()(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left before its body arrived
                return
            chunks.append(message.get("body", b""))
            size, more = size + len(chunks[-1]), message.get("more_body", False)
            if size > self.max_bytes:
                return await self._too_large()(scope, receive, send)
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)
