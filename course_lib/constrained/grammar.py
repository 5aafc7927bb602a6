"""A tool's JSON Schema compiled into a byte-level automaton that accepts exactly its JSON texts.

This is the grammar half of constrained decoding (Willard & Louf 2023, "Efficient Guided
Generation for Large Language Models", §3: a regular expression / grammar turned into a finite
state machine; llama.cpp's GBNF grammars do the same over a context-free grammar). A schema from
the tool subset becomes a small tree of matchers:

- ``Literal`` (fixed bytes: ``{"city": ``), ``Choice`` (alternatives: enum values, tool names,
  ``true|false``), ``Seq`` (one after the other), ``Items`` (array elements with ``minItems``/
  ``maxItems``) and, from :mod:`course_lib.constrained.json_values`, ``String`` (UTF-8
  well-formed by Unicode Table 3-7, JSON escapes, optional ``minLength``/``maxLength``),
  ``Number`` (``-?(0|[1-9][0-9]*)(\\.[0-9]+)?``, with ``minimum``/``maximum`` kept reachable).

A matcher is stateless: ``start() -> [state]``, ``moves(state) -> {byte: [next states]}``,
``final(state)``; its states are hashable tuples. :class:`Automaton` runs the tree as a Thompson
NFA (the set of live states after each byte) and interns every state set it meets, so it is the
lazily built DFA of the subset construction: one dict lookup per byte once a state is seen.

Every state kept is *live*: some continuation reaches acceptance (a number prefix is kept only if
a value in range still extends it), so a decoder that follows the automaton never gets stuck.
Emitted texts are canonical and compact: keys in ``properties`` order (required ones first),
separators ``", "`` and ``": "`` as ``json.dumps`` writes them, no exponent in numbers.
"""

from __future__ import annotations

import json
from fractions import Fraction

from course_lib.constrained.json_values import Number, String
from course_lib.constrained.schema import check_schema, is_valid


def merge(into: dict, moves: dict) -> dict:
    """Add ``moves`` ``{byte: [state]}`` to ``into`` (in place) and return it."""
    for b, states in moves.items():
        into.setdefault(b, []).extend(states)
    return into


def _wrap(tag, moves: dict) -> dict:
    return {b: [(tag, t) for t in states] for b, states in moves.items()}


class Literal:
    """Exactly ``text`` (bytes); the empty literal makes a matcher optional."""

    def __init__(self, text: bytes):
        self.text = text

    def start(self):
        return [0]

    def moves(self, pos):
        return {self.text[pos]: [pos + 1]} if pos < len(self.text) else {}

    def final(self, pos):
        return pos == len(self.text)


class Choice:
    """One of ``kids``; the state remembers which."""

    def __init__(self, kids):
        self.kids = kids

    def start(self):
        return [(k, s) for k, kid in enumerate(self.kids) for s in kid.start()]

    def moves(self, state):
        return _wrap(state[0], self.kids[state[0]].moves(state[1]))

    def final(self, state):
        return self.kids[state[0]].final(state[1])


class Seq:
    """``kids`` one after another; a finished kid hands over to the next (skipping nullable kids)."""

    def __init__(self, kids):
        self.kids = kids
        self.nullable = [any(kid.final(s) for s in kid.start()) for kid in kids]
        self._entries: dict[int, dict] = {}

    def start(self):
        return [(0, s) for s in self.kids[0].start()]

    def _enter(self, i):
        """Moves of starting kid ``i`` afresh (state-independent, so cached)."""
        if i not in self._entries:
            out: dict = {}
            for s in self.kids[i].start():
                merge(out, _wrap(i, self.kids[i].moves(s)))
            if self.nullable[i] and i + 1 < len(self.kids):
                merge(out, self._enter(i + 1))
            self._entries[i] = out
        return self._entries[i]

    def moves(self, state):
        i, s = state
        out = _wrap(i, self.kids[i].moves(s))
        if i + 1 < len(self.kids) and self.kids[i].final(s):
            merge(out, self._enter(i + 1))
        return out

    def final(self, state):
        i, s = state
        return self.kids[i].final(s) and all(self.nullable[i + 1:])


class Items:
    """``lo``..``hi`` items separated by ``sep``; state ``("idle", n)``, ``("sep", n, pos)`` or ``("in", n, s)``."""

    def __init__(self, item, lo: int = 0, hi: int | None = None, sep: bytes = b", "):
        if hi is not None and hi < lo:
            raise ValueError(f"minItems {lo} > maxItems {hi}: no array fits")
        self.item, self.lo, self.hi, self.sep = item, lo, hi, sep

    def _cap(self, n):
        return n if self.hi is not None else min(n, max(self.lo, 1))

    def start(self):
        return [("idle", 0)]

    def _item(self, n):
        out: dict = {}
        for s in self.item.start():
            merge(out, {b: [("in", n, t) for t in ts] for b, ts in self.item.moves(s).items()})
        return out

    def moves(self, state):
        kind, n = state[0], state[1]
        if kind == "idle":
            if self.hi is not None and n >= self.hi:
                return {}
            return self._item(n) if n == 0 else {self.sep[0]: [("sep", n, 1)]}
        if kind == "sep":
            pos = state[2]
            return {self.sep[pos]: [("sep", n, pos + 1)]} if pos < len(self.sep) else self._item(n)
        out = {b: [("in", n, t) for t in ts] for b, ts in self.item.moves(state[2]).items()}
        if self.item.final(state[2]):
            merge(out, self.moves(("idle", self._cap(n + 1))))
        return out

    def final(self, state):
        if state[0] == "idle":
            return state[1] >= self.lo
        return state[0] == "in" and self.item.final(state[2]) and self._cap(state[1] + 1) >= self.lo


def _dumps(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _bound(schema, key):
    return None if key not in schema else Fraction(schema[key])


def compile_schema(schema: dict, path: str = "schema"):
    """The matcher accepting compact JSON texts valid for ``schema`` (a subset of them: see module doc)."""
    check_schema(schema, path)
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in schema:
            raise ValueError(f"{path}: constrained decoding does not support {key!r}; use minimum/maximum")
    if "enum" in schema or "const" in schema:
        options = schema["enum"] if "enum" in schema else [schema["const"]]
        rest = {k: v for k, v in schema.items() if k not in ("enum", "const")}
        fitting = [v for v in options if is_valid(v, rest)]
        if not fitting:
            raise ValueError(f"{path}: no value of enum/const {options} satisfies the rest of the schema")
        return Choice([Literal(_dumps(v)) for v in fitting])
    if "type" not in schema:
        raise ValueError(f"{path}: constrained decoding needs 'type', 'enum' or 'const' (got keys {sorted(schema)})")
    if not isinstance(schema["type"], str):
        return Choice([compile_schema({**schema, "type": t}, path) for t in schema["type"]])
    kind = schema["type"]
    if kind in ("integer", "number"):
        return Number(kind == "integer", _bound(schema, "minimum"), _bound(schema, "maximum"))
    if kind == "string":
        return String(schema.get("minLength", 0), schema.get("maxLength"))
    if kind == "boolean":
        return Choice([Literal(b"true"), Literal(b"false")])
    if kind == "null":
        return Literal(b"null")
    if kind == "array":
        if "items" not in schema:
            raise ValueError(f"{path}: constrained decoding needs 'items' for an array")
        item = compile_schema(schema["items"], f"{path}.items")
        items = Items(item, schema.get("minItems", 0), schema.get("maxItems"))
        return Seq([Literal(b"["), items, Literal(b"]")])
    return _object(schema, path)


def _object(schema: dict, path: str):
    props, required = schema.get("properties", {}), schema.get("required", [])
    missing = [r for r in required if r not in props]
    if missing:
        raise ValueError(f"{path}: required properties {missing} have no schema in 'properties'")

    def member(name, first):
        value = compile_schema(props[name], f"{path}.properties.{name}")
        return Seq([Literal((b"" if first else b", ") + _dumps(name) + b": "), value])

    def optional(m):
        return Choice([Literal(b""), m])

    req = [p for p in props if p in required]
    opt = [p for p in props if p not in required]
    if req:
        body = [member(p, i == 0) for i, p in enumerate(req)] + [optional(member(p, False)) for p in opt]
    else:  # the first property written decides which one goes without a comma
        body = [Choice([Literal(b"")] + [Seq([member(p, True)] + [optional(member(q, False)) for q in opt[i + 1:]])
                                         for i, p in enumerate(opt)])]
    return Seq([Literal(b"{"), *body, Literal(b"}")])


def tool_call_schema(name: str, parameters: dict, name_key: str = "name", arguments_key: str = "arguments") -> dict:
    """The schema of one call ``{name_key: name, arguments_key: {...}}`` of the tool ``name``."""
    return {"type": "object", "properties": {name_key: {"const": name}, arguments_key: parameters},
            "required": [name_key, arguments_key], "additionalProperties": False}


class Automaton:
    """The lazily built DFA of a matcher: state sets interned as ints, transitions memoised.

    ``step(sid, byte)`` -> next state id, or -1 when no state survives; ``accepting(sid)``.
    """

    def __init__(self, matcher):
        self.matcher = matcher
        self.sets: list[frozenset] = []
        self._ids: dict[frozenset, int] = {}
        self._next: list[dict[int, int] | None] = []
        self._accepting: list[bool] = []
        self.start = self._intern(frozenset(matcher.start()))

    def _intern(self, states: frozenset) -> int:
        sid = self._ids.get(states)
        if sid is None:
            sid = self._ids[states] = len(self.sets)
            self.sets.append(states)
            self._next.append(None)
            self._accepting.append(any(self.matcher.final(s) for s in states))
        return sid

    def row(self, sid: int) -> dict[int, int]:
        """``{byte: next state id}`` of every byte allowed in ``sid`` (one pass over its states, memoised)."""
        row = self._next[sid]
        if row is None:
            moves: dict = {}
            for s in self.sets[sid]:
                merge(moves, self.matcher.moves(s))
            row = self._next[sid] = {b: self._intern(frozenset(ts)) for b, ts in moves.items()}
        return row

    def step(self, sid: int, b: int) -> int:
        """The state after byte ``b``; -1 if no state survives."""
        return self.row(sid).get(b, -1)

    def walk(self, sid: int, data: bytes) -> int:
        """The state after ``data`` (-1 as soon as a byte is refused)."""
        for b in data:
            sid = self.step(sid, b)
            if sid < 0:
                return -1
        return sid

    def forced(self, sid: int) -> bytes:
        """The bytes every continuation from ``sid`` starts with (up to acceptance or a choice)."""
        out = bytearray()
        while not self.accepting(sid):
            row = self.row(sid)
            if len(row) != 1:
                break
            (b, sid), = row.items()
            out.append(b)
        return bytes(out)

    def accepting(self, sid: int) -> bool:
        return sid >= 0 and self._accepting[sid]

    def matches(self, text: str) -> bool:
        """Is ``text`` (UTF-8 encoded) a complete sentence of the grammar?"""
        return self.accepting(self.walk(self.start, text.encode("utf-8")))
