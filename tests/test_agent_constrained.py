"""Tool-schema validation and the schema automaton (course_lib.constrained.schema / grammar).

Token-mask and constrained-generation tests live in test_agent_constrained_masks.py.

References: the ``jsonschema`` package (Draft 2020-12) decides validity everywhere; the token masks
are checked against a brute-force walk of every token; SmolLM2's constrained calls must all parse
and validate. Random schemas come from a seeded generator over the tool family (objects of
strings, bounded numbers, booleans, enums, null and small arrays).
"""

from __future__ import annotations

import json
import random

import pytest

from course_lib import tool_calls
from course_lib.constrained.grammar import Automaton, compile_schema
from course_lib.constrained.schema import check_schema, tool_schemas, validate, validate_call
from tests.schema_samples import VALIDATOR, random_instance, schemas


# ---------------------------------------------------------------- validation
def test_validate_agrees_with_jsonschema_on_generated_instances():
    rng = random.Random(0)
    verdicts = []
    for schema in schemas(1, 250, top=False) + schemas(2, 150):
        VALIDATOR.check_schema(schema)
        for _ in range(8):
            instance = random_instance(schema, rng, wrong=rng.choice([0.0, 0.1, 0.4]))
            ours = validate(instance, schema)
            assert (ours == []) == VALIDATOR(schema).is_valid(instance), (schema, instance, ours)
            verdicts.append(ours == [])
    assert 0.25 < sum(verdicts) / len(verdicts) < 0.75  # both kinds are tested in number


def test_validate_messages_and_tool_calls():
    schema = tool_calls.SCHEMAS["convert"]
    assert validate({"amount": "ten", "from": "USD", "to": "EUR", "x": 1}, schema) == [
        "arguments.amount: expected number, got str 'ten'", "arguments: unexpected property 'x' (allowed: "
        "['amount', 'from', 'to'])"]
    assert validate({"amount": -1, "from": "XYZ"}, schema) == [
        "arguments: missing required property 'to'", "arguments.amount: -1 is not >= 0",
        "arguments.from: 'XYZ' is not one of ['USD', 'EUR', 'JPY', 'GBP', 'CNY', 'CHF', 'CAD', 'AUD']"]
    assert validate_call({"tool": "nap", "args": {}}, tool_calls.SCHEMAS, "tool", "args")[0].startswith("unknown tool 'nap'")
    assert validate_call([1], tool_calls.SCHEMAS)[0].startswith("a tool call must be a JSON object")
    for ex in tool_calls.load("train") + tool_calls.load("test"):  # the task's own calls validate
        assert validate_call(ex.call, tool_calls.SCHEMAS, "tool", "args") == []
        VALIDATOR(tool_calls.SCHEMAS[ex.call["tool"]]).validate(ex.call["args"])
    assert {t: tuple(s["properties"]) for t, s in tool_calls.SCHEMAS.items()} == tool_calls.TOOLS


def test_unsupported_schemas_raise_clear_errors():
    with pytest.raises(ValueError, match="unsupported JSON Schema keyword 'pattern'"):
        check_schema({"type": "string", "pattern": "^a"})
    with pytest.raises(ValueError, match="unknown type 'float'"):
        validate(1.0, {"type": "float"})
    with pytest.raises(TypeError, match="must be a dict"):
        validate(1, ["type", "integer"])
    with pytest.raises(ValueError, match="'exclusiveMinimum'"):
        compile_schema({"type": "number", "exclusiveMinimum": 0})
    with pytest.raises(ValueError, match="needs 'type', 'enum' or 'const'"):
        compile_schema({"type": "object", "properties": {"x": {}}, "required": ["x"]})
    with pytest.raises(ValueError, match="minimum 3 > maximum 2"):
        compile_schema({"type": "integer", "minimum": 2.5, "maximum": 2.9})
    with pytest.raises(ValueError, match=r"required properties \['y'\] have no schema"):
        compile_schema({"type": "object", "properties": {}, "required": ["y"]})
    with pytest.raises(TypeError, match="OpenAI tool definition"):
        tool_schemas([{"type": "function"}])
    assert tool_schemas([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]) == {
        "f": {"type": "object"}}


# ---------------------------------------------------------------- the automaton
def canonical(instance, schema) -> str:
    """The text the grammar writes: required keys first (properties order), then the optional ones."""
    if isinstance(instance, dict) and "properties" in schema:
        props = schema["properties"]
        order = [p for p in props if p in schema["required"]] + [p for p in props if p not in schema["required"]]
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {canonical(instance[k], props[k])}"
                               for k in order if k in instance) + "}"
    if isinstance(instance, list) and "items" in schema:
        return "[" + ", ".join(canonical(v, schema["items"]) for v in instance) + "]"
    return json.dumps(instance, ensure_ascii=False)


def test_automaton_accepts_exactly_the_valid_canonical_texts():
    rng = random.Random(3)
    accepted = 0
    for schema in schemas(4, 150, top=False) + schemas(5, 100):
        automaton = Automaton(compile_schema(schema))
        for wrong in (0.0, 0.0, 0.2, 0.5):
            instance = random_instance(schema, rng, wrong)
            text = canonical(instance, schema)
            valid = VALIDATOR(schema).is_valid(instance)
            if automaton.matches(text):  # sound: whatever it accepts is valid
                assert VALIDATOR(schema).is_valid(json.loads(text)), (schema, text)
                accepted += 1
            elif wrong == 0.0:  # complete on canonical texts of valid instances
                pytest.fail(f"valid {text!r} refused for {schema}")
            assert not (wrong == 0.0 and not valid)
    assert accepted > 500
    number = Automaton(compile_schema({"type": "number", "minimum": -2.5, "maximum": 3}))
    assert [number.matches(t) for t in ["-2.5", "3.0", "3.01", "-2.51", "1e2", "01", "-0", "3."]] == [
        True, True, False, False, False, False, True, False]
