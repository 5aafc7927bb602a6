"""Tool-schema validation and constrained decoding (course_lib.constrained.schema / grammar / constrained).

References: the ``jsonschema`` package (Draft 2020-12) decides validity everywhere; the token masks
are checked against a brute-force walk of every token; SmolLM2's constrained calls must all parse
and validate. Random schemas come from a seeded generator over the tool family (objects of
strings, bounded numbers, booleans, enums, null and small arrays).
"""

from __future__ import annotations

import json
import random

import jsonschema
import pytest
import torch

from course_lib import tool_calls
from course_lib.constrained.grammar import Automaton, compile_schema
from course_lib.constrained.schema import check_schema, tool_schemas, validate, validate_call
from course_lib.constrained.tool_calls import (
    DONE,
    TokenMasks,
    ToolCallGrammar,
    generate_call,
    generate_calls,
    token_bytes,
)

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


SYNTHETIC = [bytes([b]) for b in range(256)] + [t.encode() for t in [
    '{"', '": ', '", "', '"}', '}}', '"]', "true", "fa", "lse", "null", "12", "-0", "0.", ".5", ", ", "é", "城市",
    "\\u00", "e9", "\\n", '"city', 'amount": ', "[]", "{}", '{"city": "']] + [b"\xe5\x9f", b"\x8e"]


def random_walk(masks: TokenMasks, rng: random.Random, max_steps: int = 600) -> list[int] | None:
    """Sample among the allowed tokens until EOS; half the time among those holding a closing byte."""
    sid, out = masks.automaton.start, []
    for _ in range(max_steps):
        allowed = masks.mask(sid).nonzero().flatten().tolist()
        assert allowed, "empty mask before acceptance"
        closing = [i for i in allowed if i == masks.eos_id or any(c in (masks.vocab[i] or b"") for c in b'"]},')]
        token = rng.choice(closing if closing and rng.random() < 0.5 else allowed)
        sid = masks.advance(sid, token)
        if sid == DONE:
            return out
        out.append(token)
    return None


def check_walks(tools: dict, vocab: list, eos: int, decode, rng, walks: int, **kw) -> int:
    grammar = ToolCallGrammar(tools, vocab, eos, **kw)
    done = 0
    for _ in range(walks):
        ids = random_walk(grammar.masks, rng)
        if ids is None:
            continue
        call = json.loads(decode(ids))
        assert validate_call(call, tools, grammar.name_key, grammar.arguments_key) == []
        VALIDATOR(tools[call[grammar.name_key]]).validate(call[grammar.arguments_key])
        done += 1
    return done


def test_random_walks_on_a_synthetic_vocabulary_always_validate():
    rng = random.Random(6)
    vocab = SYNTHETIC + [None]  # the last id is EOS
    all_schemas = schemas(7, 120)
    done = 0
    for i in range(0, len(all_schemas), 3):
        tools = {f"tool_{k}": s for k, s in enumerate(all_schemas[i:i + 3])}
        done += check_walks(tools, vocab, len(vocab) - 1, lambda ids: b"".join(vocab[i] for i in ids).decode(), rng, 6)
    assert done >= 0.95 * 40 * 6


def test_random_walks_on_smollm2_vocabulary_always_validate(smollm2_bpe):
    rng = random.Random(8)
    vocab = token_bytes(smollm2_bpe)
    eos = smollm2_bpe.token_to_id("<|im_end|>")
    all_schemas = schemas(9, 8)
    done = check_walks({f"t{k}": s for k, s in enumerate(all_schemas[:4])}, vocab, eos, smollm2_bpe.decode, rng, 12)
    done += check_walks({f"t{k}": s for k, s in enumerate(all_schemas[4:])}, vocab, eos, smollm2_bpe.decode, rng, 12,
                        name_key="tool", arguments_key="args", encode=smollm2_bpe.encode_ordinary)  # canonical
    assert done >= 22


def test_token_masks_equal_a_brute_force_walk(smollm2_bpe):
    vocab = token_bytes(smollm2_bpe)
    grammar = ToolCallGrammar(tool_calls.SCHEMAS, vocab, 2, "tool", "args")
    automaton, masks = grammar.automaton, grammar.masks
    prefixes = ["", '{"tool": "', '{"tool": "convert", "args": {"amount": 1', '{"tool": "weather", "args": {"city": "Pa',
                '{"tool": "timer", "args": {"minutes": 14', '{"tool": "convert", "args": {"amount": 3.']
    for prefix in prefixes:
        sid = automaton.walk(automaton.start, prefix.encode())
        brute = [i for i, b in enumerate(vocab) if b and automaton.walk(sid, b) >= 0]
        assert sorted(masks.allowed_ids(sid)) == brute
    digits = {str(d).encode() for d in range(10)}
    for minutes, expected in [("144", {b"0"}), ("145", set()), ("1", digits), ("0", None)]:
        sid = automaton.walk(automaton.start, b'{"tool": "timer", "args": {"minutes": ' + minutes.encode())
        if expected is None:  # 0 < minimum 1 and no integer starts with "0" but 0
            assert sid == -1
        else:  # maximum 1440: 1440 fits, 1450 does not
            assert {vocab[i] for i in masks.allowed_ids(sid)} & digits == expected


# ---------------------------------------------------------------- SmolLM2
@pytest.fixture(scope="module")
def grammar(smollm2_bpe):
    return ToolCallGrammar.from_tokenizer(tool_calls.SCHEMAS, smollm2_bpe, name_key="tool", arguments_key="args")


def test_smollm2_constrained_calls_parse_and_validate(smollm2, smollm2_bpe, grammar):
    examples = tool_calls.load("test")
    text = generate_call(smollm2, smollm2_bpe, tool_calls.prompt(examples[0].request), grammar, max_new_tokens=40)
    replies = [text] + generate_calls(smollm2, smollm2_bpe, [tool_calls.prompt(ex.request) for ex in examples[1:4]],
                                      grammar, max_new_tokens=40)
    for reply in replies:  # 100 % parse and validate (the bench measures it on 24 prompts)
        assert validate_call(json.loads(reply), tool_calls.SCHEMAS, "tool", "args") == []
        assert tool_calls.parse(reply) is not None
    with pytest.raises(ValueError, match="max_new_tokens=5 ended the call before it closed"):
        generate_call(smollm2, smollm2_bpe, tool_calls.prompt(examples[0].request), grammar, max_new_tokens=5)


def test_processor_rejects_bad_input(smollm2_bpe, grammar):
    processor = grammar.processor()
    with pytest.raises(ValueError, match="vocabulary has 49152"):
        processor(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 100))
    first = processor(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 49152))
    assert torch.isfinite(first).sum() == 1  # '{"' is forced (canonical tokenization)
    with pytest.raises(ValueError, match="not allowed by the grammar"):
        processor(torch.tensor([[0, 0, 0, smollm2_bpe.encode("Sure")[0]]]), torch.zeros(1, 49152))
    with pytest.raises(ValueError, match="eos_id must be a token id"):
        ToolCallGrammar(tool_calls.SCHEMAS, token_bytes(smollm2_bpe), 10 ** 6)
    with pytest.raises(ValueError, match="unsupported JSON Schema keyword 'format'"):
        ToolCallGrammar({"f": {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}},
                        token_bytes(smollm2_bpe), 2)
