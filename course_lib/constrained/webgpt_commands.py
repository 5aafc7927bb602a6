"""The WebGPT command language as a grammar: a model constrained by it can only write a command the browser runs.

WebGPT's model (Nakano et al. 2021, Table 1) replies with one browser command per step. A small model
asked for one often writes prose instead, clicks links that do not exist or "quotes" text that is not on the
page, and never ends its episode. Constrained decoding (Willard & Louf 2023, §3; the same
:class:`~course_lib.constrained.grammar.Automaton` and token masks as the tool-call grammar) removes the
form errors: before each token only the vocabulary entries that keep the reply a prefix of a *valid* command
survive. The language is rebuilt for every step from what the browser allows there, given as a ``spec``::

    {"search": FREE, "click": ["0", "1", "2"], "quote": ["Serialize obj to a JSON formatted str.", ...],
     "back": BARE, "answer": FREE}

- ``FREE``: ``name: `` then one line starting with a printable ASCII character: a query, a text, an answer;
- a list of strings: ``name: `` then exactly one of them (link numbers on the page, sentences on the page);
- ``BARE``: the name alone (``back``).

An empty list removes the command (no links: no ``click``). EOS is allowed exactly where a command is
complete, so a reply that ends with EOS parses as one command; ``max_new_tokens`` can still cut a
long line (then the reply is a prefix: see :func:`course_lib.webgpt.episode.parse_command`). The grammar fixes
the form and the arguments' *range*, never their choice: which link, which sentence and what answer stay the
model's.
"""

from __future__ import annotations

import torch

from course_lib.constrained.grammar import Automaton, Choice, Literal, Seq
from course_lib.constrained.tool_calls import DONE, TokenMasks, ToolCallProcessor, token_bytes

FREE = None        # spec value: any one-line argument
BARE = ()          # spec value: the command takes no argument
_NEWLINES = frozenset(b"\r\n")


class Line:
    """A printable ASCII character, then any bytes but a newline: states ``"line0"`` (nothing yet), ``"line"``.

    The first byte is not whitespace, so the argument survives the browser's ``strip()``.
    """

    def start(self):
        return ["line0"]

    def moves(self, state):
        if state == "line0":
            return {b: ["line"] for b in range(0x21, 0x7F)}
        return {b: ["line"] for b in range(256) if b not in _NEWLINES}

    def final(self, state):
        return state == "line"


def check_spec(spec: dict) -> dict:
    """``spec`` checked: command names to ``FREE``, ``BARE`` or a list of argument strings; ``ValueError`` if not."""
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"spec must be a non-empty dict of command -> FREE | BARE | [arguments], got {spec!r}")
    for name, value in spec.items():
        if not isinstance(name, str) or not name or ":" in name or not name.isascii() or name.strip() != name:
            raise ValueError(f"spec: command names must be plain ASCII words without ':', got {name!r}")
        if value is FREE or value == BARE:
            continue
        if not isinstance(value, (list, tuple)) or not all(isinstance(a, str) for a in value):
            raise ValueError(f"spec[{name!r}] must be FREE, BARE or a list of strings, got {value!r}")
        if any(not a.strip() or _NEWLINES & set(a.encode()) for a in value):
            raise ValueError(f"spec[{name!r}]: arguments must be non-blank single lines")
    if all(isinstance(v, (list, tuple)) and v != BARE and not v for v in spec.values()):
        raise ValueError("spec admits no command at all (every argument list is empty)")
    return spec


def command_matcher(spec: dict):
    """The matcher of the commands ``spec`` admits (see the module docstring)."""
    options = []
    for name, value in check_spec(spec).items():
        head = name.encode()
        if value is FREE:
            options.append(Seq([Literal(head + b": "), Line()]))
        elif value == BARE:
            options.append(Literal(head))
        elif value:
            args = list(dict.fromkeys(a.encode("utf-8") for a in value))
            options.append(Seq([Literal(head + b": "), Choice([Literal(a) for a in args])]))
    return Choice(options)


class _LineMasks(TokenMasks):
    """Token masks with the two free-line states' masks computed once for the vocabulary (same in every step)."""

    def __init__(self, automaton, vocab, eos_id, line_masks):
        super().__init__(automaton, vocab, eos_id)
        self.line_masks = line_masks

    def mask(self, sid):
        if sid != DONE and sid not in self._masks:
            inner = {_innermost(s) for s in self.automaton.sets[sid]}
            if len(inner) == 1 and next(iter(inner)) in self.line_masks:
                self._masks[sid] = self.line_masks[inner.pop()].clone()
                self._masks[sid][self.eos_id] = self.automaton.accepting(sid)
        return super().mask(sid)


def _innermost(state):
    """The leaf matcher's state inside a nested ``(kid, state)`` tuple (``"line0"``/``"line"`` in a :class:`Line`)."""
    while isinstance(state, tuple):
        state = state[-1]
    return state


class CommandGrammar:
    """The command language over one tokenizer's vocabulary; :meth:`processor` builds one step's constraint.

    ``vocab``: :func:`~course_lib.constrained.tool_calls.token_bytes` of the tokenizer; ``eos_id``: the end of
    the reply (SmolLM2's ``<|im_end|>``). Unlike the tool-call grammar, forced bytes are *not* pinned to their
    canonical tokens: ``search: `` is followed by free text and the tokenizer merges across the boundary
    (``search: How`` is ``search`` ``:`` `` How``), so the canonical encoding of ``: `` alone would force tokens
    the model never saw in its demonstrations.
    """

    def __init__(self, vocab: list[bytes | None], eos_id: int):
        if not 0 <= eos_id < len(vocab):
            raise ValueError(f"eos_id must be a token id in [0, {len(vocab)}), got {eos_id!r}")
        self.vocab, self.eos_id = vocab, eos_id
        one_line = [bool(b) and not (_NEWLINES & set(b)) for b in vocab]
        self.line_masks = {"line": torch.tensor(one_line),                                          # (V,)
                           "line0": torch.tensor([ok and 0x21 <= b[0] < 0x7F for ok, b in zip(one_line, vocab)])}

    @classmethod
    def from_tokenizer(cls, tokenizer, eos_token: str = "<|im_end|>") -> CommandGrammar:
        """Build for a ``ByteLevelBPE`` (SmolLM2's), ending replies with ``eos_token``."""
        return cls(token_bytes(tokenizer), tokenizer.token_to_id(eos_token))

    def masks(self, spec: dict) -> TokenMasks:
        """The token masks of the language ``spec`` admits."""
        return _LineMasks(Automaton(command_matcher(spec)), self.vocab, self.eos_id, self.line_masks)

    def processor(self, spec: dict) -> ToolCallProcessor:
        """A logits processor for one reply, ``processor(ids (B, T), logits (B, V)) -> logits``."""
        return ToolCallProcessor(self.masks(spec))
