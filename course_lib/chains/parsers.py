"""Output parsers: a model reply → a string, or → JSON, repaired the way small models need.

Reference design: LangChain's ``StrOutputParser`` and ``JsonOutputParser``
(https://python.langchain.com/docs/concepts/output_parsers/). Their JSON parser strips Markdown
code fences and closes a truncated object (``parse_json_markdown``); ours does that too (it parses
what theirs parses, tested) and also repairs what a 135M model writes: prose around the object,
single quotes, trailing commas, Python's ``True``/``False``/``None``. What stays unreadable raises
``ValueError`` naming the text.
"""

from __future__ import annotations

import json
import re

from course_lib.chains.base import Runnable

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)
_CLOSE = {"{": "}", "[": "]"}


def message_text(message) -> str:
    """The text of a reply: a ``str``, a :class:`course_lib.chat.ChatReply` or any message with ``.content``."""
    if isinstance(message, str):
        return message
    content = getattr(message, "content", None)
    if isinstance(content, str):
        return content
    raise TypeError(f"expected a string or a chat message with string .content, got {type(message).__name__}")


def strip_fences(text: str) -> str:
    """The inside of the first ```json ... ``` block (an unclosed fence runs to the end), else the text."""
    m = _FENCE.search(text)
    return m.group(1) if m else text


def scan(text: str, start: int) -> tuple[int | None, list[str], str | None]:
    """Walk ``text`` from the bracket at ``start``, honouring both quote styles.

    Returns (index after the balancing bracket, or None when the text ends first, or -1 at a mismatched
    bracket; brackets still to close; open quote or None)."""
    stack: list[str] = []
    quote, escaped = None, False
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in _CLOSE:
            stack.append(_CLOSE[c])
        elif c in "}]":
            if not stack or stack[-1] != c:
                return -1, stack, None  # a mismatched bracket: not JSON
            stack.pop()
            if not stack:
                return i + 1, [], None
    return None, stack, quote


def normalise(text: str) -> str:
    """Single-quoted strings → double-quoted, trailing commas dropped, ``True/False/None`` → JSON literals."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c in "\"'":                       # copy a whole string, re-quoted with "
            j, chars = i + 1, []
            while j < len(text) and text[j] != c:
                if text[j] == "\\" and j + 1 < len(text):
                    chars.append(text[j:j + 2] if text[j + 1] != "'" else "'")
                    j += 2
                    continue
                chars.append('\\"' if text[j] == '"' else "\\n" if text[j] == "\n" else text[j])
                j += 1
            out.append('"' + "".join(chars) + '"')
            i = j + 1
            continue
        if c == "," and re.match(r"\s*[}\]]", text[i + 1:]):  # a trailing comma (outside strings)
            i += 1
            continue
        word = re.match(r"True|False|None", text[i:])
        if word and (i == 0 or not text[i - 1].isalnum()):
            out.append({"True": "true", "False": "false", "None": "null"}[word.group(0)])
            i += len(word.group(0))
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _close_truncated(text: str):
    """Close an object cut off mid-way (a reply that hit ``max_tokens``): drop characters from the end
    until closing the open string and brackets parses, like langchain-core's ``parse_partial_json``."""
    for end in range(len(text), 0, -1):
        head = text[:end]
        end, stack, quote = scan(head, 0)
        if end is None and (stack or quote):
            candidate = head + (quote or "") + "".join(reversed(stack))
            try:
                return json.loads(normalise(candidate), strict=False)
            except json.JSONDecodeError:
                continue
    raise ValueError


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
        return _close_truncated(body[start:])
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
