"""Everyday tools for the agent: unit conversion and calendar arithmetic, exact and table-driven.

Units are grouped by dimension; each unit's size is given in its dimension's base unit (metre,
kilogram, second), with the exact legal definitions (1 in = 0.0254 m, 1 lb = 0.45359237 kg).
Temperature is affine, so it goes through kelvin with its own formulas. Dates are ISO
``YYYY-MM-DD`` strings handled by ``datetime.date``.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

POUND = 0.45359237  # kg, exact (international pound, 1959)
UNITS: dict[str, tuple[str, float]] = {  # unit: (dimension, size in the base unit)
    "m": ("length", 1.0), "km": ("length", 1000.0), "cm": ("length", 0.01), "mm": ("length", 0.001),
    "in": ("length", 0.0254), "ft": ("length", 0.3048), "yd": ("length", 0.9144), "mi": ("length", 1609.344),
    "nmi": ("length", 1852.0),
    "kg": ("mass", 1.0), "g": ("mass", 1e-3), "mg": ("mass", 1e-6), "t": ("mass", 1000.0),
    "lb": ("mass", POUND), "oz": ("mass", POUND / 16),
    "s": ("time", 1.0), "ms": ("time", 1e-3), "min": ("time", 60.0), "h": ("time", 3600.0),
    "day": ("time", 86400.0), "week": ("time", 604800.0),
}
TEMPERATURE = {  # unit: (to kelvin, from kelvin)
    "C": (lambda c: c + 273.15, lambda k: k - 273.15),
    "F": (lambda f: (f - 32) * 5 / 9 + 273.15, lambda k: (k - 273.15) * 9 / 5 + 32),
    "K": (lambda k: k, lambda k: k),
}
ALIASES = {
    "meter": "m", "metre": "m", "kilometer": "km", "kilometre": "km", "centimeter": "cm", "millimeter": "mm",
    "inch": "in", "foot": "ft", "feet": "ft", "yard": "yd", "mile": "mi", "nautical mile": "nmi",
    "kilogram": "kg", "gram": "g", "milligram": "mg", "tonne": "t", "pound": "lb", "lbs": "lb", "ounce": "oz",
    "second": "s", "sec": "s", "millisecond": "ms", "minute": "min", "hour": "h", "hr": "h", "days": "day",
    "weeks": "week", "celsius": "C", "°c": "C", "fahrenheit": "F", "°f": "F", "kelvin": "K",
}


def canonical_unit(unit: str, argument: str = "unit") -> str:
    """The table's name for ``unit`` (exact symbol, symbol in any case, or an English name, singular or plural)."""
    if not isinstance(unit, str):
        raise TypeError(f"{argument} must be a str such as 'km', got {type(unit).__name__}")
    if unit in UNITS or unit in TEMPERATURE:
        return unit
    key = unit.strip().lower()
    for candidate in (key, key.removesuffix("s"), key.removesuffix("es")):
        found = ALIASES.get(candidate) or next((u for u in (*UNITS, *TEMPERATURE) if u.lower() == candidate), None)
        if found:
            return found
    known = ", ".join([*UNITS, *TEMPERATURE])
    raise ValueError(f"{argument} {unit!r} is not a known unit; known: {known}")


def dimension(unit: str) -> str:
    """The dimension of a canonical unit: ``length``, ``mass``, ``time`` or ``temperature``."""
    return "temperature" if unit in TEMPERATURE else UNITS[unit][0]


def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    """``value`` in ``from_unit`` expressed in ``to_unit`` (same dimension: length, mass, time or temperature)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"value must be a number, got {type(value).__name__}")
    src, dst = canonical_unit(from_unit, "from_unit"), canonical_unit(to_unit, "to_unit")
    if dimension(src) != dimension(dst):
        raise ValueError(f"from_unit {src!r} is a {dimension(src)} but to_unit {dst!r} is a {dimension(dst)}")
    if src in TEMPERATURE:
        return TEMPERATURE[dst][1](TEMPERATURE[src][0](value))
    return value * UNITS[src][1] / UNITS[dst][1]


def parse_date(text: str, argument: str = "date") -> date:
    """``date`` from an ISO ``YYYY-MM-DD`` string; ``ValueError`` naming ``argument`` otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"{argument} must be a str 'YYYY-MM-DD', got {type(text).__name__}")
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{argument} must be a date 'YYYY-MM-DD', got {text!r}") from None


def date_diff(start: str, end: str) -> int:
    """Days from ``start`` to ``end`` (negative when ``end`` comes first)."""
    return (parse_date(end, "end") - parse_date(start, "start")).days


def weekday(day: str) -> str:
    """The English name of the weekday of ``day`` (``'2026-12-01'`` → ``'Tuesday'``)."""
    return calendar.day_name[parse_date(day, "date").weekday()]


def add_days(day: str, days: int) -> str:
    """The ISO date ``days`` days after ``day`` (before it when negative)."""
    if isinstance(days, bool) or not isinstance(days, int):
        raise TypeError(f"days must be an int, got {type(days).__name__}")
    try:
        return (parse_date(day, "date") + timedelta(days=days)).isoformat()
    except OverflowError:
        raise ValueError(f"days={days} leaves the calendar (years 1..9999)") from None
