"""course_lib.chains: chapter 10's tools and function-calling loop as Runnables, and the chain graph."""

from __future__ import annotations

import pytest
from langchain_core.output_parsers import StrOutputParser as LCStrOutputParser
from langchain_core.prompts import ChatPromptTemplate as LCChatPromptTemplate
from langchain_core.utils.function_calling import convert_to_openai_tool

from course_lib.agent.function_calling import FunctionCallingAgent
from course_lib.agent.tools import Tool, calculator_tool
from course_lib.chains import (
    ChatModelRunnable,
    ChatPromptTemplate,
    RunnableLambda,
    RunnablePassthrough,
    StrOutputParser,
    ToolAgent,
    to_langchain,
    tool,
)
from course_lib.chains.agent import STOPPED, ToolRunnable, function_tool
from course_lib.chat import ChatReply, ScriptedChatModel, ToolCall
from course_lib.viz.chain_graph import chain_figure
from tests.chains_doubles import PROMPT


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def search(query: str, k: int = 3, exact: bool = False, boost: float = 1.0) -> str:
    """Search the docs.

    A second paragraph joins the description.

    Args:
        query: what to look for,
            in plain words.
        k: how many passages.

    Returns:
        the passages."""
    return query


def test_tool_spec_equals_langchain_and_arguments_are_checked():
    assert add.spec() == {"type": "function", "function": {
        "name": "add", "description": "Add two integers.",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                       "required": ["a", "b"]}}}
    assert tool(search).spec() == convert_to_openai_tool(search)
    assert add.invoke({"a": 2, "b": 3}) == 5
    with pytest.raises(ValueError, match=r"missing arguments \['b'\], unknown arguments \['c'\]"):
        add.invoke({"a": 1, "c": 2})
    with pytest.raises(TypeError, match="dict of arguments"):
        add.invoke(3)


def test_agent_chain_calls_tools_until_a_plain_answer():
    model = ScriptedChatModel(['{"tool": "add", "args": {"a": 2, "b": 3}}',
                               ChatReply("", (ToolCall("nope", {}),), "tool_calls"), "2 + 3 = 5"])
    agent = ToolAgent(model, [add])
    out = agent.invoke("What is 2 + 3?")
    assert out["output"] == "2 + 3 = 5"
    assert out["intermediate_steps"][0] == ("add", {"a": 2, "b": 3}, "5")
    assert out["intermediate_steps"][1][2].startswith("Error: unknown tool 'nope'")
    assert model.requests[0]["tools"] == [add.spec()]
    second = model.requests[1]["messages"]
    assert second[-1]["role"] == "tool" and second[-1]["content"] == "5"
    assert second[-2]["tool_calls"][0]["function"]["name"] == "add"
    looping = ToolAgent(ScriptedChatModel(['{"tool": "add", "args": {"a": 1, "b": 1}}'] * 2), [add], max_steps=2)
    assert looping.invoke({"input": "loop"})["output"] == STOPPED
    with pytest.raises(ValueError, match="question string"):
        agent.invoke("")
    with pytest.raises(ValueError, match="at least one tool"):
        ToolAgent(model, [])


def test_a_chain_tool_is_the_agent_tool_wrapped_as_a_runnable():
    """One Tool (chapter 10's: name, JSON Schema, function); the Runnable keeps the function's own value."""
    assert isinstance(add, ToolRunnable) and isinstance(add.tool, Tool)
    assert add.spec() == add.tool.to_openai() and add.parameters is add.tool.parameters
    assert add.invoke({"a": 2, "b": 3}) == 5 and add.tool.run({"a": 2, "b": 3}) == "5"  # an agent reads text
    assert add.tool.run({"a": "two", "b": 3}).startswith("Error: add: arguments fail the schema at a")
    assert function_tool(search).to_openai() == convert_to_openai_tool(search)
    def undocumented(x: int) -> int:
        return x
    with pytest.raises(ValueError, match="description must be a non-empty str"):  # as langchain-core's @tool
        function_tool(undocumented)
    with pytest.raises(ValueError, match="name must match"):
        function_tool(lambda x: x, description="a lambda has no name")
    with pytest.raises(TypeError, match="course_lib.agent.tools.Tool"):
        ToolRunnable(add)


def test_the_agent_chain_is_chapter_10s_function_calling_loop():
    """Same script, same conversation and observations as FunctionCallingAgent run directly."""
    script = ['{"tool": "add", "args": {"a": 2, "b": 3}}', '{"tool": "calculator", "args": {"expression": "5 * 2"}}',
              '{"tool": add}', "5 * 2 = 10"]
    chain_model, loop_model = ScriptedChatModel(script), ScriptedChatModel(script)
    agent = ToolAgent(chain_model, [add, calculator_tool()], max_tokens=64)
    assert isinstance(agent.agent, FunctionCallingAgent) and agent.agent.max_tokens == 64
    out = agent.invoke("What is (2 + 3) * 2?")
    trace = FunctionCallingAgent(loop_model, [add.tool, calculator_tool()], max_tokens=64).run(
        agent.prompt.invoke({"input": "What is (2 + 3) * 2?"}))
    assert out["output"] == trace.answer == "5 * 2 = 10"
    assert out["intermediate_steps"] == [(s.action, s.arguments or {}, s.observation) for s in trace.steps[:-1]]
    assert [s[2] for s in out["intermediate_steps"][:2]] == ["5", "10"]
    assert out["intermediate_steps"][2][0] == "(invalid tool call)"  # a broken call is answered, not the answer
    def seen(model):  # what the model was sent, call ids aside (they are random)
        return [([(m["role"], m["content"], [c["function"] for c in m.get("tool_calls", [])]) for m in r["messages"]],
                 r["tools"]) for r in model.requests]
    assert seen(chain_model) == seen(loop_model) and len(chain_model.requests) == 4


# ---- graph ---------------------------------------------------------------------------------------------


def test_graph_of_a_chain_matches_langchain_shape_and_draws():
    llm = ChatModelRunnable(ScriptedChatModel([]))
    ours = (ChatPromptTemplate(PROMPT) | llm | StrOutputParser()).graph()
    theirs = (LCChatPromptTemplate.from_messages(PROMPT) | to_langchain(llm) | LCStrOutputParser()).get_graph()
    assert ours.nodes[1:-1] == [n.name for n in theirs.nodes.values()][1:-1]
    assert len(ours.nodes) == len(theirs.nodes) and len(ours.edges) == len(theirs.edges)
    assert ours.edges == [(0, 1), (1, 2), (2, 3), (3, 4)]
    par = ({"a": lambda x: x, "b": RunnablePassthrough()} | RunnableLambda(len)).graph()
    fan_out = [b for a, b in par.edges if par.nodes[a] == "RunnableParallel<a,b>Input"]
    assert len(fan_out) == 2
    agent = ToolAgent(ScriptedChatModel([]), [add]).graph()
    assert (agent.nodes.index("tools<add>"), agent.nodes.index("ChatModel<scripted>")) in agent.edges  # the loop
    fig = chain_figure(agent)
    assert len(fig.layout.annotations) == len(agent.edges) + len(agent.nodes)  # one arrow per edge, one box per node
    assert list(fig.data[0].text) == agent.nodes
    assert sum(a.arrowcolor == "#d62728" for a in fig.layout.annotations) == 1  # the loop edge
