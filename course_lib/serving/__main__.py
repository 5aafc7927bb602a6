"""CLI: ``python -m course_lib.serving --port 8000 [--host 127.0.0.1] [--int8] [--slots N] [--max-len N]``.

Serves SmolLM2-135M-Instruct with continuous batching until Ctrl-C / SIGTERM (uvicorn's graceful
shutdown: open requests finish, then the engine thread stops).
"""

from __future__ import annotations

import argparse

import uvicorn

from course_lib.serving.app import create_app
from course_lib.serving.server import MODEL_NAME, smollm2_engine


def main(argv: list[str] | None = None) -> None:
    """Command line of ``python -m course_lib.serving``: build the SmolLM2 engine and serve the OpenAI API with uvicorn."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.serving", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--slots", type=int, default=8, help="KV-cache slots: requests decoded together")
    parser.add_argument("--max-len", type=int, default=1024, help="positions per slot (prompt + completion)")
    parser.add_argument("--int8", action="store_true", help="weight-only int8 linears (per-channel scales)")
    parser.add_argument("--model-name", default=MODEL_NAME, help="the id clients pass as `model`")
    args = parser.parse_args(argv)
    engine = smollm2_engine(slots=args.slots, max_len=args.max_len, int8=args.int8)
    uvicorn.run(create_app(engine, args.model_name), host=args.host, port=args.port, log_level="info",
                timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
