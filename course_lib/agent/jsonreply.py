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

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}


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


def _close_brackets(text: str) -> str:
    """Append the ``"``, ``]`` and ``}`` a reply cut off by ``max_tokens`` is missing."""
    stack, in_string, escaped = [], False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    return text + ('"' if in_string else "") + "".join(reversed(stack))


def repair_json(text: str) -> str:
    """Deterministic fixes: fences, Python literals and quotes, trailing commas, missing closers."""
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    start = body.find("{")
    body = body[start:] if start >= 0 else body
    if '"' not in body:  # a Python dict literal: 'key' -> "key"
        body = body.replace("'", '"')
    body = re.sub(r"\b(True|False|None)\b", lambda m: _PY_LITERALS[m.group(1)], body)
    body = _TRAILING_COMMA.sub(r"\1", body)
    return _close_brackets(body.rstrip().rstrip(","))


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


__all__ = ["find_json_object", "parse_json_reply", "repair_json"]
