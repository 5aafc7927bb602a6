"""Metadata filters for the vector store: a small subset of Qdrant's filter language.

A filter is a dict ``{field: condition}``; all conditions must hold (AND, Qdrant ``must``):

- ``{"lang": "en"}`` — equality (``MatchValue``);
- ``{"lang": {"in": ["en", "de"]}}`` — membership (``MatchAny``);
- ``{"year": {"gte": 2000, "lt": 2010}}`` — a range with any of ``gt``, ``gte``, ``lt``, ``lte`` (``Range``).

A point without the field never matches. A field that no point of the collection has ever carried
is almost always a typo, so it raises ``ValueError`` instead of silently matching nothing.

Values keep their JSON type, as in Qdrant: ``True`` never matches ``1`` (although ``True == 1`` in
Python), ``1`` never matches ``1.0``, and a range never matches a bool. Equality takes a str, int
or bool (Qdrant's ``MatchValue``), ``in`` a list of str or int (``MatchAny`` has no bools or floats).
"""

from __future__ import annotations

import numpy as np

RANGE_OPS = {"gt": np.greater, "gte": np.greater_equal, "lt": np.less, "lte": np.less_equal}


def _kind(value) -> type | None:
    """The JSON type a filter compares by: ``bool``, ``int`` or ``str`` (``None`` for anything else)."""
    return next((t for t in (bool, int, str) if isinstance(value, t)), None)


def _same(value, target) -> bool:
    """Equal and of the same kind: ``True`` is not ``1``, ``1.0`` is not ``1`` (Qdrant's matching)."""
    return _kind(value) is not None and _kind(value) is _kind(target) and value == target


def check_filter(flt: dict | None, known_fields: set[str]) -> dict:
    """Validate ``flt`` against the collection's fields; returns ``{}`` for ``None``."""
    if flt is None:
        return {}
    if not isinstance(flt, dict):
        raise TypeError(f"filter must be a dict {{field: condition}}, got {type(flt).__name__}")
    for name, cond in flt.items():
        if name not in known_fields:
            raise ValueError(f"filter on unknown field {name!r}; the collection's fields are {sorted(known_fields)}")
        if isinstance(cond, dict):
            ops = set(cond)
            if ops == {"in"}:
                if not isinstance(cond["in"], (list, tuple, set)):
                    raise TypeError(f"filter {name!r}: 'in' takes a list of values, got {type(cond['in']).__name__}")
                if not all(_kind(v) in (int, str) for v in cond["in"]):
                    raise TypeError(f"filter {name!r}: 'in' takes str or int values (Qdrant's MatchAny), got "
                                    f"{list(cond['in'])!r}; match a bool with {{{name!r}: True}}")
            elif not ops or not ops <= set(RANGE_OPS):
                raise ValueError(f"filter {name!r}: unknown condition {sorted(ops)}; use a value, {{'in': [...]}} "
                                 f"or a range with {sorted(RANGE_OPS)}")
            elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in cond.values()):
                raise TypeError(f"filter {name!r}: range bounds must be numbers, got {cond}")
        elif _kind(cond) is None:
            raise TypeError(f"filter {name!r}: equality takes a str, int or bool (Qdrant's MatchValue), got "
                            f"{cond!r}; use a range such as {{'gte': x, 'lte': x}} for a float")
    return flt


def matches(payload: dict, flt: dict) -> bool:
    """Whether one payload satisfies a validated filter."""
    for name, cond in flt.items():
        if name not in payload:
            return False
        value = payload[name]
        if isinstance(cond, dict) and "in" in cond:
            if not any(_same(value, v) for v in cond["in"]):
                return False
        elif isinstance(cond, dict):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return False
            if not all(RANGE_OPS[op](value, bound) for op, bound in cond.items()):
                return False
        elif not _same(value, cond):
            return False
    return True


def mask(payloads: list[dict], flt: dict) -> np.ndarray:
    """Boolean mask over points (one Python check per point: fine for the course's collection sizes)."""
    if not flt:
        return np.ones(len(payloads), bool)
    return np.fromiter((matches(p, flt) for p in payloads), bool, count=len(payloads))
