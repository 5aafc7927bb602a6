"""Constrained decoding: logits processors that let a model write only what a grammar admits.

They sit beside :mod:`course_lib.generation` (the ``logits_processor`` hook of ``generate``), below every
application that uses them: a JSON-Schema validator (:mod:`.schema`, checked against ``jsonschema``), byte
automata for JSON values (:mod:`.json_values`) and schemas (:mod:`.grammar`), the tool-call grammar over
a tokenizer's vocabulary (:mod:`.tool_calls`, chapter 10) and :class:`CiteFirst` (chapter 09)::

    from course_lib import constrained
    grammar = constrained.ToolCallGrammar(tokenizer, tools)
    calls = constrained.generate_calls(model, tokenizer, prompts, grammar)
"""

from course_lib.constrained.cite_first import CiteFirst
from course_lib.constrained.grammar import Automaton, compile_schema, tool_call_schema
from course_lib.constrained.schema import check_schema, is_valid, tool_schemas, validate, validate_call
from course_lib.constrained.tool_calls import (
                                               TokenMasks,
                                               ToolCallGrammar,
                                               ToolCallProcessor,
                                               generate_call,
                                               generate_calls,
                                               token_bytes,
)

__all__ = ["Automaton", "CiteFirst", "TokenMasks", "ToolCallGrammar", "ToolCallProcessor", "check_schema",
           "compile_schema", "generate_call", "generate_calls", "is_valid", "token_bytes", "tool_call_schema",
           "tool_schemas", "validate", "validate_call"]
