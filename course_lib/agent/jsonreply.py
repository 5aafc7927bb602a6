"""Reading one JSON object out of a model's reply, and repairing the usual near-misses.

Models asked for "one JSON object and nothing else" wrap it in a Markdown fence, add a sentence
before or after, leave a trailing comma, use Python's single quotes and ``True``/``None``, or stop
before the last ``}`` when ``max_tokens`` runs out. AutoGPT met all of these and shipped a
``fix_json`` step (``autogpt/json_utils``, first a regex repair, then asking the model again);
:func:`parse_json_reply` does the deterministic part and says whether it had to repair.
"""

from __future__ import annotations

import json
import re

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.S)
_CLOSE = {"{": "}", "[": "]"}
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}


def strip_fences(text: str) -> str:
    """The inside of the first ```json ... ``` block (an unclosed fence runs to the end), else the text."""
    m = _FENCE.search(text)
    return m.group(1) if m else text


def find_json_object(text: str, outermost: bool = False) -> dict | None:
    """The first ``{...}`` in ``text`` that parses as a JSON object (prose around it ignored).

    ``outermost=True`` tries only the first ``{`` (of the fenced block when there is one), so a
    broken outer object is not silently replaced by a valid object nested inside it.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    fenced = _FENCE.search(text)
    candidates = [fenced.group(1), text] if fenced else [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        starts = [m.start() for m in re.finditer(r"\{", candidate)]
        for start in starts[:1] if outermost else starts:
            try:
                obj, _ = decoder.raw_decode(candidate, start)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
        if outermost and starts:
            return None
    return None


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
            out.append(_PY_LITERALS[word.group(0)])
            i += len(word.group(0))
            continue
        out.append(c)
        i += 1
    return "".join(out)


def close_truncated(text: str):
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


def repair_json(text: str) -> str:
    """Deterministic fixes: fences, Python literals and quotes, trailing commas, missing closers.

    String-aware (:func:`normalise`): text inside a JSON string is never edited, so
    ``'{"a": "True story",}'`` repairs to ``{"a": "True story"}``.
    """
    body = strip_fences(text)
    start = body.find("{")
    body = body[start:] if start >= 0 else body
    body = normalise(body).rstrip().rstrip(",")  # a reply cut off right after a comma
    end, stack, quote = scan(body, 0)
    if end is None:  # cut off by max_tokens: close the open string and brackets
        body += (quote or "") + "".join(reversed(stack))
    return body


def parse_json_reply(text: str) -> tuple[dict | None, str]:
    """``(object, how)``: how is ``"ok"``, ``"repaired"`` or the reason no object could be read."""
    obj = find_json_object(text, outermost=True)
    if obj is not None:
        return obj, "ok"
    obj = find_json_object(repair_json(text), outermost=True)
    if obj is not None:
        return obj, "repaired"
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    return None, "valid JSON but not an object"


__all__ = ["close_truncated", "find_json_object", "normalise", "parse_json_reply", "repair_json", "scan", "strip_fences"]
