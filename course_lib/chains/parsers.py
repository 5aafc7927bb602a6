"""Output parsers: a model reply → a string, or → JSON, repaired the way small models need.

Reference design: LangChain's ``StrOutputParser`` and ``JsonOutputParser``
(https://python.langchain.com/docs/concepts/output_parsers/). Their JSON parser strips Markdown
code fences and closes a truncated object (``parse_json_markdown``); ours does that too (it parses
what theirs parses, tested) and also repairs what a 135M model writes: prose around the object,
single quotes, trailing commas, Python's ``True``/``False``/``None``. What stays unreadable raises
``ValueError`` naming the text. The repair steps (:func:`strip_fences`, :func:`scan`,
:func:`normalise`, :func:`close_truncated`) are the agent's, from :mod:`course_lib.agent.jsonreply`:
one string-aware repair for the whole library.
"""

from __future__ import annotations

import json

from course_lib.agent.jsonreply import close_truncated, normalise, scan, strip_fences
from course_lib.chains.base import Runnable


def message_text(message) -> str:
    """The text of a reply: a ``str``, a :class:`course_lib.chat.ChatReply` or any message with ``.content``."""
    if isinstance(message, str):
        return message
    content = getattr(message, "content", None)
    if isinstance(content, str):
        return content
    raise TypeError(f"expected a string or a chat message with string .content, got {type(message).__name__}")


def parse_json(text: str):
    """JSON from a model reply, repaired step by step; ``ValueError`` when nothing readable is left."""
    if not isinstance(text, str):
        raise TypeError(f"parse_json takes a str, got {type(text).__name__}")
    for body in (text.strip(), strip_fences(text).strip()):
        try:
            return json.loads(body, strict=False)
        except json.JSONDecodeError:
            pass
    starts = [i for i in (body.find("{"), body.find("[")) if i >= 0]
    if not starts:
        raise ValueError(f"no JSON object or array in the model output: {text[:80]!r}")
    start = min(starts)
    end, _, _ = scan(body, start)
    try:
        if end == -1:
            raise ValueError
        if end is not None:
            return json.loads(normalise(body[start:end]), strict=False)
        return close_truncated(body[start:])
    except (json.JSONDecodeError, ValueError):
        raise ValueError(f"JSON in the model output is irreparable: {body[start:start + 80]!r}") from None


class StrOutputParser(Runnable):
    """A reply → its text; streams the pieces through unchanged (``model | StrOutputParser()`` streams)."""

    def invoke(self, input, config=None) -> str:
        return message_text(input)

    def transform(self, chunks, config=None):
        for chunk in chunks:
            yield message_text(chunk)


class JsonOutputParser(Runnable):
    """A reply → the JSON value it holds (see :func:`parse_json`). Streaming yields the final value once."""

    def invoke(self, input, config=None):
        return parse_json(message_text(input))

    def transform(self, chunks, config=None):
        yield parse_json("".join(message_text(c) for c in chunks))
