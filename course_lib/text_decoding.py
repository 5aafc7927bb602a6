"""Text decoding: token ids → text while they are generated, stop strings, OpenAI messages → template turns.

Everything that turns a model's output into text, or a conversation into the text a model reads,
is written once here; :func:`course_lib.generation.stream`, :class:`course_lib.chat.LocalChatModel`
and the chapter-13 server (:mod:`course_lib.serving`) all use it.

- :class:`Detokenizer`: incremental detokenisation. A byte-level BPE token can end inside a
  UTF-8 character (a Chinese character or an emoji spans several tokens), so the bytes of an
  incomplete character are held back until it completes (Python's incremental UTF-8 decoder,
  ``codecs.getincrementaldecoder``, with HF's ``errors="replace"``). Each token is decoded once, so a
  reply of n tokens costs O(n), not the O(n²) of decoding the whole output at every step; the
  pieces join to exactly ``tokenizer.decode(ids, skip_special_tokens=True)``.
- :class:`TextStream`: a detokenizer with OpenAI's ``stop`` strings. The reply ends just before the
  first stop string to appear (the stop is not included). One hold-back rule: the longest end of
  the text that is the start of a stop string is not released yet (llama.cpp's server,
  ``find_partial_stop_string`` in ``examples/server/server.cpp``), so released text never has to be
  taken back, and nothing more than that is held.
- :func:`check_messages`, :func:`to_template_messages`: the one check of OpenAI chat messages
  (every role in :data:`ROLES`) and their mapping to the plain-text turns of a chat template
  (``developer`` as ``system``, an assistant's ``tool_calls`` as the course's JSON, ``tool`` results
  as user turns); :mod:`course_lib.tokenizers.chat_template` renders and tokenises those turns.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable

ROLES = ("system", "developer", "user", "assistant", "tool")  # OpenAI's chat roles


class Detokenizer:
    """Token ids → text, one id at a time; :meth:`add` returns the text that id completes.

    ``tokenizer`` needs ``decode(ids, skip_special_tokens=...)``. With ``decode_bytes(ids)`` and
    ``special_tokens`` ``{string: id}`` (:class:`~course_lib.tokenizers.bpe.ByteLevelBPE`) each id's
    bytes go through an incremental UTF-8 decoder, which holds back an incomplete character. Without
    them the ids since the last complete character are decoded together, and their text is released
    once it does not end in U+FFFD (exact for tokenizers whose text is the concatenation of their
    tokens' bytes). ``"".join(pieces) + flush()`` equals ``tokenizer.decode(ids, skip_special_tokens)``.
    """

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        if not callable(getattr(tokenizer, "decode", None)):
            raise TypeError(f"tokenizer must have decode(ids, skip_special_tokens=...), got {type(tokenizer).__name__}")
        self.tokenizer, self.skip_special_tokens = tokenizer, skip_special_tokens
        self._bytes = getattr(tokenizer, "decode_bytes", None)
        specials = getattr(tokenizer, "special_tokens", None)
        if self._bytes is not None and isinstance(specials, dict):
            self._skip = frozenset(specials.values()) if skip_special_tokens else frozenset()
            self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        else:
            self._bytes = None
        self._window: list[int] = []  # without decode_bytes: the ids since the last complete character

    def add(self, token_id: int) -> str:
        """The text that ``token_id`` completes ("" while a character is still incomplete)."""
        if self._bytes is not None:
            return "" if token_id in self._skip else self._utf8.decode(self._bytes([token_id]))
        self._window.append(token_id)
        text = self.tokenizer.decode(self._window, skip_special_tokens=self.skip_special_tokens)
        if text.endswith("\ufffd"):  # maybe a character cut in two: wait for the next id
            return ""
        self._window = []
        return text

    def flush(self) -> str:
        """The end of the text: bytes still held back, as ``decode`` gives them (U+FFFD for an incomplete character)."""
        if self._bytes is not None:
            return self._utf8.decode(b"", final=True)
        text = self.tokenizer.decode(self._window, skip_special_tokens=self.skip_special_tokens) if self._window else ""
        self._window = []
        return text


def check_stop(stop) -> tuple[str, ...]:
    """``stop`` as a tuple of non-empty strings (OpenAI accepts one string or a list; ``None`` is none)."""
    try:
        stop = (stop,) if isinstance(stop, str) else tuple(stop or ())
    except TypeError:
        raise TypeError(f"stop must be a string or a list of strings, got {type(stop).__name__}") from None
    if not all(isinstance(s, str) and s for s in stop):
        raise ValueError(f"stop must be a non-empty string or a list of them, got {stop!r}")
    return stop


def held_back(text: str, stop: Iterable[str]) -> int:
    """Length of the longest end of ``text`` that is the start of a stop string (that text is not released yet)."""
    return max((k for s in stop for k in range(min(len(s) - 1, len(text)), 0, -1) if text.endswith(s[:k])),
               default=0)


class TextStream:
    """A reply's text as it is generated: :meth:`push` each token id, :meth:`finish` at the end.

    Both return the text released by that call. When a stop string appears, the text before its
    first occurrence is released, :attr:`stopped` turns true and nothing more is taken. :attr:`text`
    is everything released so far. ``stop`` is one string or a list (checked by :func:`check_stop`).
    """

    def __init__(self, tokenizer, stop=(), skip_special_tokens: bool = True):
        self.stop = check_stop(stop)
        self.detokenizer = Detokenizer(tokenizer, skip_special_tokens)
        self.text = ""          # released so far (a stop string never included)
        self.stopped = False    # a stop string ended the text
        self._pending = ""      # decoded, not released: it may start a stop string

    def push(self, token_id: int) -> str:
        """Take one generated token; return the text it releases."""
        return self._release(self.detokenizer.add(token_id), final=False)

    def finish(self) -> str:
        """The reply ended (a stop token or the length limit): release what was held back."""
        return self._release(self.detokenizer.flush(), final=True)

    def _release(self, new: str, final: bool) -> str:
        if self.stopped:
            raise ValueError("this text stream has stopped at a stop string; start a new TextStream")
        pending = self._pending + new
        hits = [i for i in (pending.find(s) for s in self.stop) if i >= 0]
        if hits:
            out, self._pending, self.stopped = pending[:min(hits)], "", True
        else:
            keep = 0 if final else held_back(pending, self.stop)
            out, self._pending = pending[:len(pending) - keep], pending[len(pending) - keep:]
        self.text += out
        return out


def check_messages(messages) -> list[dict]:
    """Refuse anything that is not a non-empty list of OpenAI messages; return ``messages``.

    Each is a dict with ``role`` in :data:`ROLES` and ``content`` a string, or ``None`` when the
    message carries ``tool_calls`` (an assistant asking for tools).
    """
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ValueError(f"messages[{i}] must be a dict with role in {ROLES}, got {m!r}")
        content = m.get("content")
        if content is not None and not isinstance(content, str):
            raise TypeError(f"messages[{i}]['content'] must be a string or None, got {type(content).__name__}")
        if content is None and not m.get("tool_calls"):
            raise ValueError(f"messages[{i}] has no content and no tool_calls")
    return messages


def tools_system_prompt(tools: list[dict]) -> str:
    """A system message listing OpenAI-format tools and the course's JSON call format."""
    lines = ["You can call these tools:"]
    for t in tools:
        fn = t.get("function", t)
        params = ", ".join(fn.get("parameters", {}).get("properties", {}))
        lines.append(f"- {fn['name']}({params}): {fn.get('description', '')}")
    lines.append('To call a tool, answer with one JSON object {"tool": <name>, "args": {...}} and nothing else. '
                 "Otherwise answer in plain text.")
    return "\n".join(lines)


def to_template_messages(messages: list[dict], tools: list[dict] | None = None) -> list[dict]:
    """OpenAI messages (checked by :func:`check_messages`) -> plain-text turns for a chat template.

    ``developer`` (OpenAI's newer name for system) becomes ``system``; an assistant's ``tool_calls``
    become the course's ``{"tool": name, "args": {...}}`` JSON lines; ``tool`` results become user
    turns (SmolLM2's template has no tool role). ``tools`` are listed in the system message
    (:func:`tools_system_prompt`). A ``tool_calls`` entry whose arguments are not JSON raises ``ValueError``.
    """
    out = []
    for m in check_messages(messages):
        content = m.get("content") or ""
        if m.get("tool_calls"):
            calls = [{"tool": c["function"]["name"], "args": json.loads(c["function"]["arguments"])}
                     for c in m["tool_calls"]]
            content = "\n".join(json.dumps(c) for c in calls)
        if m["role"] == "tool":
            out.append({"role": "user", "content": f"Tool result: {content}"})
        elif m["role"] == "developer":
            out.append({"role": "system", "content": content})
        else:
            out.append({"role": m["role"], "content": content})
    if tools:
        system = tools_system_prompt(tools)
        if out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + system}
        else:
            out.insert(0, {"role": "system", "content": system})
    return out


__all__ = ["ROLES", "Detokenizer", "TextStream", "check_messages", "check_stop", "held_back", "to_template_messages",
           "tools_system_prompt"]
