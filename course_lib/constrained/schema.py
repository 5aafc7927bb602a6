"""Validate tool-call arguments against the JSON Schema subset that tool definitions use.

OpenAI-style function calling describes each tool's ``parameters`` as a JSON Schema (draft
2020-12, https://json-schema.org/draft/2020-12/json-schema-validation). A model's arguments must be
checked before the tool runs; the errors go back to the model as an observation, so they are
readable strings with a path: ``"arguments.amount: expected number, got str 'ten'"``.

Supported keywords (anything else raises ``ValueError`` naming it, so a schema is never silently
half-checked): ``type`` (object, string, integer, number, boolean, null, array, or a list of
them), ``enum``, ``const``, ``properties``, ``required``, ``additionalProperties`` (bool or schema),
``items``, ``minItems``/``maxItems``, ``minimum``/``maximum``, ``exclusiveMinimum``/
``exclusiveMaximum``, ``minLength``/``maxLength``, and the annotations ``title``, ``description``,
``default``, ``examples``, ``$schema``.

The semantics follow the ``jsonschema`` package (tested equal on generated instances): an integer
is an ``int`` or a float with no fractional part, a bool is never a number, ``enum`` compares
``True`` and ``1`` as different, and each keyword applies only to instances of its own type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$schema"})
KEYWORDS = frozenset({"type", "enum", "const", "properties", "required", "additionalProperties", "items",
                      "minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                      "minLength", "maxLength"}) | ANNOTATIONS


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_count(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def check_schema(schema: Mapping, path: str = "schema") -> None:
    """Raise ``TypeError``/``ValueError`` if ``schema`` leaves the supported subset (names the keyword)."""
    if not isinstance(schema, Mapping):
        raise TypeError(f"{path} must be a dict (a JSON Schema), got {type(schema).__name__}")
    for key in schema:
        if key not in KEYWORDS:
            raise ValueError(f"{path}: unsupported JSON Schema keyword {key!r}; supported: {sorted(KEYWORDS)}")
    types = schema.get("type", [])
    for t in [types] if isinstance(types, str) else types:
        if t not in TYPES:
            raise ValueError(f"{path}.type: unknown type {t!r}; expected one of {TYPES}")
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise ValueError(f"{path}.enum must be a non-empty list")
    props = schema.get("properties", {})
    if not isinstance(props, Mapping):
        raise TypeError(f"{path}.properties must be a dict of name -> schema")
    for name, sub in props.items():
        check_schema(sub, f"{path}.properties.{name}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise TypeError(f"{path}.required must be a list of property names")
    extra = schema.get("additionalProperties", True)
    if not isinstance(extra, bool):
        check_schema(extra, f"{path}.additionalProperties")
    if "items" in schema:
        check_schema(schema["items"], f"{path}.items")
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in schema and not _is_number(schema[key]):
            raise TypeError(f"{path}.{key} must be a number, got {schema[key]!r}")
    for key in ("minItems", "maxItems", "minLength", "maxLength"):
        if key in schema and not _is_count(schema[key]):
            raise TypeError(f"{path}.{key} must be an int >= 0, got {schema[key]!r}")


def _has_type(instance: object, t: str) -> bool:
    if t == "integer":
        return (isinstance(instance, int) and not isinstance(instance, bool)) or (
            isinstance(instance, float) and instance.is_integer())
    return {"object": isinstance(instance, dict), "array": isinstance(instance, list),
            "string": isinstance(instance, str), "number": _is_number(instance),
            "boolean": isinstance(instance, bool), "null": instance is None}[t]


def json_equal(a: object, b: object) -> bool:
    """JSON equality as ``jsonschema`` defines it: ``True != 1``, ``1 == 1.0``, deep for lists and dicts."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _short(x: object) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def _errors(instance: object, schema: Mapping, path: str, out: list[str]) -> None:
    if "type" in schema:
        types = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not any(_has_type(instance, t) for t in types):
            out.append(f"{path}: expected {' or '.join(types)}, got {type(instance).__name__} {_short(instance)}")
    if "enum" in schema and not any(json_equal(instance, v) for v in schema["enum"]):
        out.append(f"{path}: {_short(instance)} is not one of {schema['enum']}")
    if "const" in schema and not json_equal(instance, schema["const"]):
        out.append(f"{path}: expected {schema['const']!r}, got {_short(instance)}")
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in instance:
                out.append(f"{path}: missing required property {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, value in instance.items():
            if name in props:
                _errors(value, props[name], f"{path}.{name}", out)
            elif extra is False:
                out.append(f"{path}: unexpected property {name!r} (allowed: {sorted(props)})")
            elif isinstance(extra, Mapping):
                _errors(value, extra, f"{path}.{name}", out)
    if isinstance(instance, list):
        if "items" in schema:
            for i, item in enumerate(instance):
                _errors(item, schema["items"], f"{path}[{i}]", out)
        if len(instance) < schema.get("minItems", 0):
            out.append(f"{path}: expected at least {schema['minItems']} items, got {len(instance)}")
        if len(instance) > schema.get("maxItems", math.inf):
            out.append(f"{path}: expected at most {schema['maxItems']} items, got {len(instance)}")
    if _is_number(instance):
        bounds = [("minimum", lambda x, b: x >= b, ">="), ("maximum", lambda x, b: x <= b, "<="),
                  ("exclusiveMinimum", lambda x, b: x > b, ">"), ("exclusiveMaximum", lambda x, b: x < b, "<")]
        for key, ok, sign in bounds:
            if key in schema and not ok(instance, schema[key]):
                out.append(f"{path}: {instance!r} is not {sign} {schema[key]!r}")
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            out.append(f"{path}: string shorter than minLength {schema['minLength']} ({len(instance)} characters)")
        if len(instance) > schema.get("maxLength", math.inf):
            out.append(f"{path}: string longer than maxLength {schema['maxLength']} ({len(instance)} characters)")


def validate(instance: object, schema: Mapping, path: str = "arguments") -> list[str]:
    """Readable errors of ``instance`` against ``schema`` (``[]`` = valid); ``path`` prefixes each error."""
    check_schema(schema)
    out: list[str] = []
    _errors(instance, schema, path, out)
    return out


def is_valid(instance: object, schema: Mapping) -> bool:
    """``validate(instance, schema) == []``."""
    return not validate(instance, schema)


def tool_schemas(tools) -> dict[str, dict]:
    """``{tool name: parameters schema}`` from a dict of that form or a list of OpenAI tool definitions.

    An OpenAI definition is ``{"type": "function", "function": {"name": ..., "parameters": {...}}}``
    (a bare ``{"name": ..., "parameters": ...}`` is accepted too). Every schema is checked.
    """
    if isinstance(tools, Mapping):
        table = dict(tools)
    elif isinstance(tools, list):
        table = {}
        for i, tool in enumerate(tools):
            fn = tool.get("function", tool) if isinstance(tool, Mapping) else None
            if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
                raise TypeError(f"tools[{i}] must be an OpenAI tool definition {{'type': 'function', "
                                f"'function': {{'name': str, 'parameters': schema}}}}, got {tool!r}")
            table[fn["name"]] = fn.get("parameters", {"type": "object", "properties": {}})
    else:
        raise TypeError(f"tools must be a dict name -> schema or a list of OpenAI tool definitions, "
                        f"got {type(tools).__name__}")
    if not table:
        raise ValueError("tools must name at least one tool")
    for name, schema in table.items():
        check_schema(schema, f"tools[{name!r}]")
    return table


def validate_call(call: object, tools, name_key: str = "name", arguments_key: str = "arguments") -> list[str]:
    """Errors of a decoded call ``{name_key: tool, arguments_key: {...}}`` against the tools' schemas."""
    table = tool_schemas(tools)
    if not isinstance(call, dict):
        return [f"a tool call must be a JSON object, got {type(call).__name__} {_short(call)}"]
    extra = sorted(set(call) - {name_key, arguments_key})
    if extra:
        return [f"unexpected keys {extra} in the call; expected {name_key!r} and {arguments_key!r}"]
    name = call.get(name_key)
    if name not in table:
        return [f"unknown tool {_short(name)}; available: {sorted(table)}"]
    if arguments_key not in call:
        return [f"missing {arguments_key!r} for tool {name!r}"]
    return validate(call[arguments_key], table[name], arguments_key)
