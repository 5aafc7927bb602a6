"""Seeded random tool schemas and instances shared by the constrained-decoding tests."""
from __future__ import annotations

import random

import jsonschema

from course_lib.constrained.grammar import compile_schema

NAMES = ["city", "amount", "unit", "a", "b", "城市", "from", "to", "n"]
SCALARS = ["C", "F", "", "é", 0, 1, -3, 2.5, True, False, None, "x y"]
VALIDATOR = jsonschema.Draft202012Validator


def random_schema(rng: random.Random, depth: int = 0, top: bool = False) -> dict:
    kinds = ["object"] if top else ["string", "integer", "number", "boolean", "enum", "null"] + (
        ["object", "array"] if depth < 2 else [])
    kind = rng.choice(kinds)
    if kind == "enum":
        s = {"enum": rng.sample(SCALARS, rng.randint(1, 4))}
        if rng.random() < 0.3:
            s["type"] = rng.choice(["string", "integer", "number", "boolean"])
            if not any(VALIDATOR({"type": s["type"]}).is_valid(v) for v in s["enum"]):
                del s["type"]
        return s
    s = {"type": kind}
    if kind == "string" and rng.random() < 0.5:
        s["minLength"] = rng.randint(0, 2)
        if rng.random() < 0.5:
            s["maxLength"] = s["minLength"] + rng.randint(0, 4)
    if kind in ("integer", "number"):
        lo = rng.choice([rng.randint(-60, 60), round(rng.uniform(-60, 60), 2), None])
        if lo is not None:
            s["minimum"] = lo
        if rng.random() < 0.6:
            s["maximum"] = (lo if lo is not None else rng.randint(-60, 0)) + rng.choice([0, 1, 7, 250, 1.5])
    if kind == "array":
        s["items"] = random_schema(rng, depth + 1)
        s["minItems"] = rng.randint(0, 2)
        if rng.random() < 0.5:
            s["maxItems"] = s["minItems"] + rng.randint(0, 2)
    if kind == "object":
        names = rng.sample(NAMES, rng.randint(0 if not top else 1, 4))
        s["properties"] = {n: random_schema(rng, depth + 1) for n in names}
        s["required"] = [n for n in names if rng.random() < 0.6]
        if rng.random() < 0.7:
            s["additionalProperties"] = False
    return s


def has_value(schema: dict) -> bool:
    """Is some instance valid? (integer bounds like [2.5, 2.9] admit none)."""
    try:
        compile_schema(schema)
    except ValueError:
        return False
    return True


def random_instance(schema: dict, rng: random.Random, wrong: float = 0.0):
    """An instance that is valid in canonical form when ``wrong`` = 0; each node is spoiled with probability ``wrong``."""
    if rng.random() < wrong:
        return rng.choice([*SCALARS, [], {}, {"zz": 1}, "long string " * 3, 10 ** 6, -10 ** 6, 0.5])
    if "enum" in schema:
        return rng.choice([v for v in schema["enum"] if VALIDATOR(schema).is_valid(v)])
    kind = schema["type"]
    if kind in ("integer", "number"):
        lo, hi = schema.get("minimum", -100), schema.get("maximum", 100)
        lo, hi = (lo, max(lo, hi)) if "minimum" in schema else (min(lo, hi), hi)
        if kind == "integer":
            return rng.randint(int(-(-lo // 1)), int(hi // 1))
        return min(max(round(rng.uniform(lo, hi), 3), lo), hi)
    if kind == "string":
        lo = schema.get("minLength", 0)
        n = rng.randint(lo, schema.get("maxLength", lo + 5))
        return "".join(rng.choice('ab"\\\n\tZé城😀 /\u007f\u0001') for _ in range(n))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "array":
        n = rng.randint(schema["minItems"], schema.get("maxItems", schema["minItems"] + 2))
        return [random_instance(schema["items"], rng, wrong) for _ in range(n)]
    props, required = schema["properties"], schema["required"]
    keep = [p for p in props if p in required] + [p for p in props if p not in required and rng.random() < 0.5]
    out = {p: random_instance(props[p], rng, wrong) for p in keep}
    if rng.random() < wrong and keep:
        del out[rng.choice(keep)]
    return out


def schemas(seed: int, count: int, top: bool = True) -> list[dict]:
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        s = random_schema(rng, top=top)
        if has_value(s):
            out.append(s)
    return out
