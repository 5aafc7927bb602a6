"""The agent loops with our SmolLM2: a grammar passed to LocalChatModel turns every reply into a valid call."""

import json

import pytest
import torch

from course_lib.agent.function_calling import FunctionCallingAgent
from course_lib.agent.tools import ToolRegistry, calculator_tool, convert_units_tool
from course_lib.chat import LocalChatModel
from course_lib.constrained.tool_calls import ToolCallGrammar
from course_lib.generation import generate

TOOLS = ToolRegistry([calculator_tool(), convert_units_tool()])
QUESTIONS = ["What is 17 * 23?", "Convert 5 km to m."]


@pytest.fixture(scope="module")
def grammar(smollm2_bpe):
    return ToolCallGrammar.from_tokenizer(TOOLS.to_openai(), smollm2_bpe, name_key="tool", arguments_key="args")


def test_constraint_reaches_the_decoder_and_every_call_validates(smollm2, smollm2_bpe, grammar):
    model = LocalChatModel(smollm2, smollm2_bpe, constraint=lambda messages, tools: grammar.processor())
    eos = grammar.masks.eos_id
    for question in QUESTIONS:
        messages = [{"role": "user", "content": question}]
        reply = model.chat(messages, tools=TOOLS.to_openai(), max_tokens=48)
        assert len(reply.tool_calls) == 1, f"{question!r}: no call in {reply.content!r}"
        call = reply.tool_calls[0]
        TOOLS[call.name].check(call.arguments)  # raises ValueError when the arguments fail the schema
        ids = torch.tensor([model.prompt_ids(messages, TOOLS.to_openai())])
        out = generate(smollm2, ids, 48, logits_processor=grammar.processor(), stop_tokens=[eos])[0, ids.shape[1]:]
        assert eos in out.tolist(), "the grammar's reference run did not close the call"
        expected = json.loads(smollm2_bpe.decode(out.tolist()[:out.tolist().index(eos)]))
        assert expected == {"tool": call.name, "args": call.arguments}  # the same greedy, masked path


def test_first_turn_constraint_in_the_function_calling_loop(smollm2, smollm2_bpe, grammar):
    def first_turn(messages, tools):  # OpenAI's tool_choice="required" on the first turn only
        return grammar.processor() if tools and messages[-1]["role"] == "user" else None

    trace = FunctionCallingAgent(LocalChatModel(smollm2, smollm2_bpe, constraint=first_turn), TOOLS,
                                 max_steps=1, max_tokens=40).run("What is 17 * 23?")
    assert trace.steps[0].action == "calculator" and trace.steps[0].observation == "391"


def test_constraint_must_be_callable():
    with pytest.raises(TypeError, match="constraint must be a callable"):
        LocalChatModel(constraint="json")
