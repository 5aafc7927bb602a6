"""Token masks and constrained generation (course_lib.constrained.tool_calls).

References: the ``jsonschema`` package (Draft 2020-12) decides validity; the token masks are checked
against a brute-force walk of every token; SmolLM2's constrained calls must all parse and validate.
"""
from __future__ import annotations

import json
import random

import pytest
import torch

from course_lib import tool_calls
from course_lib.constrained.schema import validate_call
from course_lib.constrained.tool_calls import (
    DONE,
    TokenMasks,
    ToolCallGrammar,
    generate_call,
    generate_calls,
    token_bytes,
)
from tests.schema_samples import VALIDATOR, schemas

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
