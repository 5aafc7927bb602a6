"""Serving an LLM: continuous batching, weight-only int8, an OpenAI-compatible HTTP server (chapter 13).

- :mod:`.slots`: :class:`SlotKVCache`, a KV cache whose slots each have their own length;
- :mod:`.engine`: :class:`Engine` (continuous batching, Orca/vLLM scheduling); :mod:`.request`: :class:`Request`;
- :mod:`.params`: :class:`SamplingParams`;
- :mod:`.int8`: :class:`Int8Linear`, :func:`quantize_int8` (per-output-channel absmax scales);
- :mod:`.app`: :func:`create_app`, the FastAPI app with OpenAI's routes and SSE streaming;
  :mod:`.protocol` its request bodies, :mod:`.errors` its OpenAI error bodies and body-size cap;
- :mod:`.server`: :func:`smollm2_engine`, :func:`serve_in_background` (uvicorn on a free loopback port);
- ``python -m course_lib.serving --port 8000``: the CLI.
"""

from course_lib.serving.app import create_app
from course_lib.serving.engine import ContextLengthError, Engine
from course_lib.serving.errors import APIError
from course_lib.serving.int8 import Int8Linear, quantize_int8, quantize_per_channel, weight_bytes
from course_lib.serving.params import SamplingParams
from course_lib.serving.request import Request
from course_lib.serving.server import MODEL_NAME, BackgroundServer, serve_in_background, smollm2_engine
from course_lib.serving.slots import SlotKVCache

__all__ = ["MODEL_NAME", "APIError", "BackgroundServer", "ContextLengthError", "Engine", "Int8Linear", "Request",
           "SamplingParams", "SlotKVCache", "create_app", "quantize_int8", "quantize_per_channel",
           "serve_in_background", "smollm2_engine", "weight_bytes"]
