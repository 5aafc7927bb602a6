"""A grammar for every agent turn: a valid tool call *or* a final answer, so a constrained loop can end itself.

:mod:`course_lib.constrained.tool_calls` admits only a call, so a model held to it can never answer
(chapter 10's function-calling run repeated its call until the step cap). Each grammar here is the
language of one whole turn of a loop, built from the byte matchers of :mod:`.grammar`
(Willard & Louf 2023, §3–4; llama.cpp's GBNF does the same for its ``json`` / tool grammars):

- :func:`react_turn`: ``Thought: <text>\\n`` then either ``Action: <tool>\\nAction Input: <its JSON
  arguments>`` or ``Final Answer: <text>`` (Yao et al. 2023, ReAct §2; LangChain's labels);
- :func:`function_calling_turn`: the course's call ``{"tool": <name>, "args": {...}}`` (what
  :class:`course_lib.chat.LocalChatModel` reads as ``tool_calls``) or plain content that cannot be
  taken for a call (no ``{`` or ``"``): OpenAI's "``tool_calls`` or ``content``";
- :func:`autogpt_turn`: AutoGPT's reply ``{"thoughts": {"text", "reasoning", "plan", "criticism"},
  "command": {"name", "args"}}`` where the command is one of the tools or ``finish``.

Free text is a :class:`Text` of bounded length, and every string of a schema gets a ``maxLength``
(:func:`bounded`), so each branch closes within a known number of bytes. A :class:`TurnGrammar`
compiles a turn over a tokenizer's vocabulary (:class:`~.tool_calls.TokenMasks`, masks cached per
automaton state) and is itself the ``constraint(messages, tools)`` hook of ``LocalChatModel``.
"""

from __future__ import annotations

from course_lib.constrained.grammar import Automaton, Choice, Literal, Seq, compile_schema, tool_call_schema
from course_lib.constrained.json_values import _utf8_lead
from course_lib.constrained.schema import tool_schemas
from course_lib.constrained.tool_calls import TokenMasks, ToolCallProcessor, token_bytes

THOUGHT_CHARS, ANSWER_CHARS, STRING_CHARS = 60, 120, 100


class Text:
    """``min_len``..``max_len`` characters of well-formed UTF-8 without the bytes in ``banned``, on one line.

    State ``(count, utf8)``: characters so far, and ``None`` or the pending UTF-8 continuation
    ``(left, lo, hi)`` (Unicode Table 3-7, as :class:`~.json_values.String`). Control characters
    below 0x20 are refused as well, so a line stays one printable line, and the first character is not a
    space or ``*`` (the ReAct parser strips both after a label), so a text never reads as nothing.
    """

    def __init__(self, min_len: int = 1, max_len: int = ANSWER_CHARS, banned: bytes = b""):
        if not 0 <= min_len <= max_len:
            raise ValueError(f"need 0 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
        self.min_len, self.max_len, self.banned = min_len, max_len, frozenset(banned)

    def start(self):
        return [(0, None)]

    def step(self, state, b):
        count, utf8 = state
        if utf8 is not None:
            left, lo, hi = utf8
            if not lo <= b <= hi:
                return []
            return [(count + 1, None)] if left == 1 else [(count, (left - 1, 0x80, 0xBF))]
        if count >= self.max_len or b in self.banned or b < 0x20 or b == 0x7F or (count == 0 and b in b" *"):
            return []
        if b < 0x80:
            return [(count + 1, None)]
        lead = _utf8_lead(b)
        return [(count, lead)] if lead else []

    def moves(self, state):
        return {b: nxt for b in range(256) if (nxt := self.step(state, b))}

    def final(self, state):
        return state[1] is None and state[0] >= self.min_len


def bounded(schema, max_len: int = STRING_CHARS):
    """``schema`` with ``maxLength: max_len`` on every string that has none (so a constrained string must close)."""
    if isinstance(schema, list):
        return [bounded(s, max_len) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (bounded(v, max_len) if k in ("items", "anyOf", "oneOf") else v) for k, v in schema.items()}
    if "properties" in schema:
        out["properties"] = {k: bounded(v, max_len) for k, v in schema["properties"].items()}
    kinds = schema.get("type")
    if (kinds == "string" or (isinstance(kinds, list) and "string" in kinds)) and "maxLength" not in schema:
        out["maxLength"] = max(max_len, schema.get("minLength", 0))
    return out


def react_turn(tools, thought_chars: int = THOUGHT_CHARS, answer_chars: int = ANSWER_CHARS):
    """``Thought: ...\\n`` + (``Action: <tool>\\nAction Input: <JSON>`` | ``Final Answer: ...``) for ``tools``."""
    actions = [Seq([Literal(f"Action: {name}\nAction Input: ".encode()), compile_schema(bounded(params), name)])
               for name, params in tool_schemas(tools).items()]
    final = Seq([Literal(b"Final Answer: "), Text(1, answer_chars)])
    return Seq([Literal(b"Thought: "), Text(1, thought_chars), Literal(b"\n"), Choice(actions + [final])])


def function_calling_turn(tools, answer_chars: int = ANSWER_CHARS):
    """``{"tool": <name>, "args": {...}}`` for one of ``tools``, or a one-line answer without ``{`` and ``"``."""
    calls = [compile_schema(tool_call_schema(name, bounded(params), "tool", "args"), name)
             for name, params in tool_schemas(tools).items()]
    return Choice(calls + [Text(1, answer_chars, banned=b'{"')])


def autogpt_turn(tools, finish: str = "finish", thought_chars: int = THOUGHT_CHARS,
                 answer_chars: int = ANSWER_CHARS):
    """AutoGPT's JSON reply whose command is one of ``tools`` or ``finish(answer)``, keys in the prompt's order."""
    schemas = tool_schemas(tools)
    if finish in schemas:
        raise ValueError(f"finish={finish!r} is also a tool's name")
    line = {"type": "string", "minLength": 1, "maxLength": thought_chars}
    thoughts = {"type": "object", "properties": {k: line for k in ("text", "reasoning", "plan", "criticism")},
                "required": ["text", "reasoning", "plan", "criticism"], "additionalProperties": False}
    schemas[finish] = {"type": "object", "required": ["answer"], "additionalProperties": False,
                       "properties": {"answer": {"type": "string", "minLength": 1, "maxLength": answer_chars}}}
    commands = [compile_schema(tool_call_schema(name, bounded(params), "name", "args"), name)
                for name, params in schemas.items()]
    return Seq([Literal(b'{"thoughts": '), compile_schema(thoughts, "thoughts"), Literal(b', "command": '),
                Choice(commands), Literal(b"}")])


class TurnGrammar:
    """One turn's grammar over a vocabulary; call it as ``LocalChatModel``'s ``constraint(messages, tools)``.

    ``matcher``: a turn from :func:`react_turn`, :func:`function_calling_turn` or :func:`autogpt_turn`
    (or any matcher of :mod:`.grammar`). The masks cache lives here: build once, reuse for every turn.
    """

    def __init__(self, matcher, vocab: list[bytes | None], eos_id: int, encode=None):
        self.automaton = Automaton(matcher)
        self.masks = TokenMasks(self.automaton, vocab, eos_id, encode)

    @classmethod
    def from_tokenizer(cls, matcher, tokenizer, eos_token: str = "<|im_end|>", canonical: bool = False) -> TurnGrammar:
        """Build for a ``ByteLevelBPE``; EOS is ``eos_token``.

        ``canonical`` (off by default) forces the first token of the tokenizer's split of forced bytes.
        A turn's literals end in a space before free text or a branch (``Thought: ``, ``Action: ``), and
        forcing that space alone would make the model write ``I`` where it learned `` I``; left free,
        the model picks the token it was trained on (the automaton still checks every byte).
        """
        return cls(matcher, token_bytes(tokenizer), tokenizer.token_to_id(eos_token),
                   tokenizer.encode_ordinary if canonical else None)

    def processor(self) -> ToolCallProcessor:
        """A fresh logits processor for one reply."""
        return ToolCallProcessor(self.masks)

    def matches(self, text: str) -> bool:
        """Is ``text`` one whole turn of this grammar?"""
        return self.automaton.matches(text)

    def __call__(self, messages: list[dict], tools: list[dict] | None = None) -> ToolCallProcessor:
        """The ``LocalChatModel(constraint=...)`` hook: every reply is held to the turn grammar."""
        return self.processor()


def turn_matcher(fmt: str, tools):
    """The turn grammar of loop ``fmt`` (``"react"``, ``"function_calling"`` or ``"autogpt"``) over ``tools``."""
    makers = {"react": react_turn, "function_calling": function_calling_turn, "autogpt": autogpt_turn}
    if fmt not in makers:
        raise ValueError(f"fmt must be one of {sorted(makers)}, got {fmt!r}")
    return makers[fmt](tools)


__all__ = ["ANSWER_CHARS", "STRING_CHARS", "THOUGHT_CHARS", "Text", "TurnGrammar", "autogpt_turn", "bounded",
           "function_calling_turn", "react_turn", "turn_matcher"]
