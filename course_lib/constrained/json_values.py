"""Byte-level matchers for JSON strings and numbers, the leaves of :mod:`course_lib.constrained.grammar`.

A matcher has ``start() -> [state]``, ``moves(state) -> {byte: [state]}`` and ``final(state)``; its
states are hashable tuples or strings. ``String`` follows RFC 8259 §7 (escapes; raw control
characters refused) and the Unicode Standard's well-formed UTF-8 (Table 3-7), so any accepted
bytes decode; ``Number`` follows RFC 8259 §6 without exponents and keeps only prefixes that some
value inside ``[minimum, maximum]`` still extends (as outlines keeps regex states live:
Willard & Louf 2023, §3).
"""

from __future__ import annotations

import math
from fractions import Fraction

_ESCAPES = frozenset(b'"\\/bfnrt')
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _utf8_lead(b: int):
    """(continuation bytes left, allowed range of the next one) after a lead byte; None if not a lead."""
    if 0xC2 <= b <= 0xDF:
        return 1, 0x80, 0xBF
    if 0xE0 <= b <= 0xEF:
        return 2, (0xA0 if b == 0xE0 else 0x80), (0x9F if b == 0xED else 0xBF)
    if 0xF0 <= b <= 0xF4:
        return 3, (0x90 if b == 0xF0 else 0x80), (0x8F if b == 0xF4 else 0xBF)
    return None


class String:
    """A JSON string of ``min_len``..``max_len`` characters; state ``(phase, count, detail)``.

    ``count`` (characters so far) is capped at ``min_len`` when there is no ``max_len``, so an
    unbounded string has a handful of states. ``\\u`` escapes of surrogates are refused: each
    escape or UTF-8 sequence is then exactly one Python character, as ``minLength`` counts them.
    """

    def __init__(self, min_len: int = 0, max_len: int | None = None):
        if max_len is not None and max_len < min_len:
            raise ValueError(f"minLength {min_len} > maxLength {max_len}: no string fits")
        self.min_len, self.max_len = min_len, max_len

    def start(self):
        return [("open", 0, None)]

    def _char(self, count):
        count += 1
        return ("body", count if self.max_len is not None else min(count, self.min_len), None)

    def step(self, state, b):
        phase, count, detail = state
        room = self.max_len is None or count < self.max_len
        if phase == "open":
            return [("body", 0, None)] if b == 0x22 else []
        if phase == "body":
            if b == 0x22:
                return [("done", count, None)] if count >= self.min_len else []
            if not room:
                return []
            if b == 0x5C:
                return [("esc", count, None)]
            if 0x20 <= b < 0x80:
                return [self._char(count)]
            lead = _utf8_lead(b)
            return [("utf8", count, lead)] if lead else []
        if phase == "esc":
            if b == 0x75:  # \u
                return [("hex", count, (0, False))]
            return [self._char(count)] if b in _ESCAPES else []
        if phase == "hex":
            k, after_d = detail
            if b not in _HEX or (k == 1 and after_d and not 0x30 <= b <= 0x37):  # no \uD800-\uDFFF
                return []
            return [self._char(count)] if k == 3 else [("hex", count, (k + 1, k == 0 and b in b"dD"))]
        if phase == "utf8":
            left, lo, hi = detail
            if not lo <= b <= hi:
                return []
            return [self._char(count)] if left == 1 else [("utf8", count, (left - 1, 0x80, 0xBF))]
        return []

    def moves(self, state):
        return {b: nxt for b in range(256) if (nxt := self.step(state, b))}

    def final(self, state):
        return state[0] == "done"


_NEXT_PHASE = {("S", "-"): "-", ("S", "0"): "0", ("S", "1"): "D", ("-", "0"): "0", ("-", "1"): "D",
               ("D", "0"): "D", ("D", "1"): "D", ("0", "."): ".", ("D", "."): ".",
               (".", "0"): "F", (".", "1"): "F", ("F", "0"): "F", ("F", "1"): "F"}


class Number:
    """``-?(0|[1-9][0-9]*)`` and, unless ``integer``, ``(\\.[0-9]+)?``; bounds ``lo``/``hi`` inclusive (None: open).

    Unbounded, the state is the syntax phase only. Bounded, it is ``(phase, prefix)`` and a digit
    is allowed only if some number in range still starts with the new prefix (:meth:`reachable`).
    """

    def __init__(self, integer: bool, lo: Fraction | None = None, hi: Fraction | None = None):
        if integer:  # integers: inclusive integer bounds
            lo = None if lo is None else Fraction(math.ceil(lo))
            hi = None if hi is None else Fraction(math.floor(hi))
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"minimum {lo} > maximum {hi}: no {'integer' if integer else 'number'} fits")
        self.integer, self.lo, self.hi = integer, lo, hi
        self.bounded = lo is not None or hi is not None

    def start(self):
        return [("S", b"")] if self.bounded else ["S"]

    def _meets(self, a, a_open, b, b_open):
        """Does the interval from a to b (None = infinite; open ends flagged) meet [lo, hi]?"""
        if self.lo is not None and (a is None or a < self.lo):
            a, a_open = self.lo, False
        if self.hi is not None and (b is None or b > self.hi):
            b, b_open = self.hi, False
        if a is None or b is None:
            return True
        return a < b or (a == b and not a_open and not b_open)

    def reachable(self, prefix: str) -> bool:
        """Is there a value in [lo, hi] whose text starts with ``prefix``?"""
        neg = prefix.startswith("-")
        whole, dot, frac = prefix.lstrip("-").partition(".")
        if not whole:  # "" or "-": any value of that sign
            return self._meets(None, True, 0, False) if neg else self._meets(None, True, None, True)
        if dot or whole == "0":
            x = Fraction(f"{whole}.{frac}" if frac else whole)
            spans = [(x, x)] if self.integer else [(x, x + Fraction(1, 10 ** len(frac)))]
        else:  # more digits may follow: d, d0.., d00.., ... (and d.xxx for numbers)
            limit = self.hi if not neg else (None if self.lo is None else -self.lo)
            if limit is None:
                return True  # arbitrarily large magnitudes reach past any bound on the other side
            d, spans, k = int(whole), [], 0
            while k == 0 or d * 10 ** k <= limit:
                end = (d + 1) * 10 ** k
                spans.append((d * 10 ** k, end - 1 if self.integer else end))
                k += 1
        for a, b in spans:
            closed_end = self.integer or a == b
            if neg and self._meets(-b, not closed_end, -a, False):
                return True
            if not neg and self._meets(a, False, b, not closed_end):
                return True
        return False

    def step(self, state, b):
        ch = chr(b)
        key = "1" if ch in "123456789" else ch
        phase = _NEXT_PHASE.get((state[0] if self.bounded else state, key))
        if phase is None or (self.integer and phase in ".F"):
            return []
        if not self.bounded:
            return [phase]
        prefix = state[1] + bytes([b])
        return [(phase, prefix)] if self.reachable(prefix.decode()) else []

    def moves(self, state):
        return {b: nxt for b in b"-.0123456789" if (nxt := self.step(state, b))}

    def final(self, state):
        if not self.bounded:
            return state in ("0", "D", "F")
        phase, prefix = state
        if phase not in ("0", "D", "F"):
            return False
        value = Fraction(prefix.decode())
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)
