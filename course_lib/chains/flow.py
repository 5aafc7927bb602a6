"""What flows through a chain: the config every step receives, a batch's arguments, streamed chunks.

LangChain passes one ``RunnableConfig`` dict to every step
(https://python.langchain.com/docs/concepts/runnables/#runnableconfig), checks a batch's inputs and
``max_concurrency`` the same way for ``batch`` and ``abatch``, and joins streamed pieces with ``+``
when a step needs its whole input (``langchain_core.runnables.base.Runnable.transform``).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from typing import Any


def check_config(config) -> dict:
    """``None`` or a dict (LangChain's ``RunnableConfig``); returns a dict."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict such as {{'configurable': {{...}}}}, got {type(config).__name__}")
    return dict(config)


def combine_chunks(chunks: list) -> Any:
    """Join streamed pieces into one value: strings concatenate, dicts merge, others add with ``+``."""
    if not chunks:
        raise ValueError("combine_chunks: the input stream was empty (a previous step yielded nothing)")
    if len(chunks) == 1:
        return chunks[0]
    if all(isinstance(c, str) for c in chunks):
        return "".join(chunks)
    if all(isinstance(c, Mapping) for c in chunks):
        return functools.reduce(lambda a, b: {**a, **b}, chunks, {})
    return functools.reduce(operator.add, chunks)


def check_batch(inputs, max_concurrency) -> None:
    """What ``batch`` and ``abatch`` both require: a list of inputs and ``None`` or a positive worker count."""
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"batch(inputs) takes a list of inputs, got {type(inputs).__name__}")
    if max_concurrency is not None and (isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int)
                                        or max_concurrency < 1):
        raise ValueError(f"max_concurrency must be a positive int or None, got {max_concurrency!r}")
