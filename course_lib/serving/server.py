"""Running the server: SmolLM2's engine, and uvicorn in a background thread on a free loopback port.

For tests and notebooks::

    from course_lib.serving import serve_in_background, smollm2_engine
    with serve_in_background(smollm2_engine(slots=8)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")   # http://127.0.0.1:PORT/v1
        ...
    # leaving the block: uvicorn's graceful shutdown, the engine thread stopped, both threads joined

From a shell: ``python -m course_lib.serving --port 8000`` (see ``__main__.py``).
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from course_lib.serving.app import create_app
from course_lib.serving.engine import Engine

MODEL_NAME = "smollm2-135m-instruct"


def smollm2_engine(slots: int = 8, max_len: int = 1024, int8: bool = False) -> Engine:
    """A (not yet started) :class:`Engine` over SmolLM2-135M-Instruct; ``int8`` swaps in int8 linears."""
    from course_lib import pretrained
    from course_lib.serving.int8 import quantize_int8

    model = pretrained.smollm2()
    if int8:
        quantize_int8(model)
    return Engine(model, pretrained.smollm2_tokenizer(), slots=slots, max_len=max_len)


class BackgroundServer:
    """uvicorn serving ``app`` from a daemon thread on ``host:port`` (port 0: a free one, chosen at bind)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        if not isinstance(port, int) or not 0 <= port < 65536:
            raise ValueError(f"port must be an int in [0, 65536), got {port!r}")
        self.app, self.host, self.port = app, host, port
        self._config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                                      timeout_graceful_shutdown=5)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` (``/health`` lives here)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url``: ``http://host:port/v1``."""
        return f"{self.url}/v1"

    def start(self, timeout: float = 60.0) -> BackgroundServer:
        """Bind, start the thread and wait until uvicorn accepts connections (the engine has started)."""
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((self.host, self.port))
        self.port = self._socket.getsockname()[1]
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start within {timeout} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown: stop accepting, let open requests end (≤ 5 s), stop the engine, join."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"the server thread on {self.url} did not stop within {timeout} s")
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> BackgroundServer:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_in_background(app_or_engine, host: str = "127.0.0.1", port: int = 0,
                        model_name: str = MODEL_NAME) -> BackgroundServer:
    """Start serving an :class:`Engine` (wrapped by :func:`create_app`) or a ready app; returns the running server."""
    app = create_app(app_or_engine, model_name) if isinstance(app_or_engine, Engine) else app_or_engine
    return BackgroundServer(app, host, port).start()
