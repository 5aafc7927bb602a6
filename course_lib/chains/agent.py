"""Chapter 10's tools and function-calling loop as steps of a chain.

Reference design: LangChain's ``@tool`` (a function → name, description, JSON-Schema arguments;
https://python.langchain.com/docs/concepts/tools/) and the classic ``AgentExecutor`` (model with
tools bound → run the requested tools → feed results back → until a plain answer or ``max_steps``;
its output dict ``{"input", "output", "intermediate_steps"}``).

Nothing here re-implements chapter 10: a tool *is* :class:`course_lib.agent.tools.Tool` (name,
description, JSON Schema, function), which :func:`tool` builds from a typed, documented function
and :class:`ToolRunnable` wraps as a Runnable; :class:`ToolAgent` runs
:class:`course_lib.agent.function_calling.FunctionCallingAgent` (the one function-calling loop: schema
checks, errors sent back to the model, a broken call answered with an error) and reports its
:class:`~course_lib.agent.trace.Trace` as LangChain's output dict. The model is any
:class:`course_lib.chat.ChatModel`; tool calls use OpenAI's format, which
:class:`~course_lib.chat.LocalChatModel` maps to the course's ``{"tool": ..., "args": {...}}`` JSON.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Callable, Mapping

from course_lib.agent.function_calling import FunctionCallingAgent
from course_lib.agent.tools import Tool
from course_lib.chains.base import Runnable
from course_lib.chains.models import ChatModelRunnable
from course_lib.chains.prompts import ChatPromptTemplate

JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}
STOPPED = "Agent stopped due to iteration limit."
AGENT_PROMPT = ChatPromptTemplate([
    ("system", "You are a helpful assistant. Use a tool when it helps; answer in plain text when you know the answer."),
    ("human", "{input}"),
])


def arg_descriptions(doc: str) -> dict[str, str]:
    """``{name: description}`` from a Google-style ``Args:`` section (indented ``name: text`` lines)."""
    out: dict[str, str] = {}
    current, indent = None, 0
    for line in (doc.split("Args:", 1)[1].splitlines() if "Args:" in doc else []):
        if line.strip() and not line.startswith((" ", "\t")):
            break  # the next section ("Returns:") starts unindented
        m = re.match(r"\s+(\w+)(?:\s*\(.*?\))?:\s*(.*)", line)
        if m and (current is None or len(line) - len(line.lstrip()) <= indent):
            current, indent = m.group(1), len(line) - len(line.lstrip())
            out[current] = m.group(2).strip()
        elif line.strip() and current:
            out[current] = f"{out[current]} {line.strip()}".strip()
    return out


def function_schema(func: Callable) -> dict:
    """The JSON Schema of ``func``'s arguments, as langchain-core's ``convert_to_openai_tool`` writes it."""
    params = inspect.signature(func).parameters.values()
    docs = arg_descriptions(inspect.getdoc(func) or "")
    try:
        hints = typing.get_type_hints(func)
    except (NameError, TypeError):  # an annotation that does not resolve: treat the argument as a string
        hints = {}
    return {
        "type": "object",
        "properties": {p.name: {**({"description": docs[p.name]} if p.name in docs else {}),
                                **({} if p.default is inspect.Parameter.empty else {"default": p.default}),
                                "type": JSON_TYPES.get(hints.get(p.name), "string")} for p in params},
        "required": [p.name for p in params if p.default is inspect.Parameter.empty],
    }


def function_tool(func: Callable, name: str | None = None, description: str | None = None) -> Tool:
    """An agent :class:`~course_lib.agent.tools.Tool` from a typed, documented function.

    The description is the docstring before its ``Args:`` section, whitespace collapsed (as
    langchain-core's); the tool answers ``str(func(**args))``, since an agent's tool answers text.
    """
    if not callable(func):
        raise TypeError(f"a tool wraps a callable, got {type(func).__name__}")
    description = description or " ".join((inspect.getdoc(func) or "").split("Args:")[0].split())

    @functools.wraps(func)
    def as_text(**arguments) -> str:
        return str(func(**arguments))

    return Tool(name or func.__name__, description, function_schema(func), as_text)


class ToolRunnable(Runnable):
    """A :class:`~course_lib.agent.tools.Tool` as a step of a chain: ``invoke({"arg": value})`` → ``func(arg=value)``.

    ``func`` is the function's own value (a number stays a number); without it, the tool's text answer.
    """

    def __init__(self, tool: Tool, func: Callable | None = None):
        if not isinstance(tool, Tool):
            raise TypeError(f"tool must be a course_lib.agent.tools.Tool, got {type(tool).__name__}")
        self.tool, self.func = tool, func or tool.function

    name = property(lambda self: self.tool.name, doc="The tool's name.")
    description = property(lambda self: self.tool.description, doc="What the tool does (for the model).")
    parameters = property(lambda self: self.tool.parameters, doc="The JSON Schema of its arguments.")

    def spec(self) -> dict:
        """The OpenAI tool entry ``{"type": "function", "function": {name, description, parameters}}``."""
        return self.tool.to_openai()

    def invoke(self, input, config=None):
        if not isinstance(input, Mapping):
            raise TypeError(f"tool {self.name!r} takes a dict of arguments, got {type(input).__name__}")
        missing = [a for a in self.parameters.get("required", []) if a not in input]
        unknown = [a for a in input if a not in self.parameters.get("properties", {})]
        if missing or unknown:
            raise ValueError(f"tool {self.name!r}: missing arguments {missing}, unknown arguments {unknown}; "
                             f"expected {list(self.parameters.get('properties', {}))}")
        return self.func(**input)


def tool(func: Callable) -> ToolRunnable:
    """Decorator: ``@tool`` turns a typed, documented function into a :class:`ToolRunnable` over an agent ``Tool``."""
    return ToolRunnable(function_tool(func), func)


def as_agent_tool(t) -> Tool:
    """An agent ``Tool`` from a :class:`ToolRunnable`, a ``Tool`` or a plain function."""
    return t.tool if isinstance(t, ToolRunnable) else t if isinstance(t, Tool) else function_tool(t)


class ToolAgent(Runnable):
    """question → prompt → chapter 10's function-calling loop → ``{"input", "output", "intermediate_steps"}``.

    ``prompt`` renders the first messages from ``{"input": question}``; few-shot turns in it show a
    small model the call format (chapter 12 does that for SmolLM2). ``options`` are the model's call
    options (``max_tokens`` default 256, ``temperature``, ``stop``...). Each intermediate step is
    ``(tool name, arguments, observation)``; a failed call's observation starts with ``"Error: "``.
    """

    def __init__(self, model, tools: list, *, prompt: ChatPromptTemplate = AGENT_PROMPT, max_steps: int = 5,
                 **options):
        tools = [as_agent_tool(t) for t in tools]
        if not tools:
            raise ValueError("ToolAgent needs at least one tool")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
        if not isinstance(prompt, ChatPromptTemplate) or prompt.input_variables != ["input"]:
            raise ValueError("prompt must be a ChatPromptTemplate whose only variable is {input} (the question)")
        llm = model if isinstance(model, ChatModelRunnable) else ChatModelRunnable(model, **options)
        self.llm, self.tools = llm.bind_tools(tools), {t.name: t for t in tools}
        self.prompt, self.max_steps = prompt, max_steps
        self.agent = FunctionCallingAgent(self.llm, tools, max_steps=max_steps,
                                          max_tokens=self.llm.options.get("max_tokens", 256),
                                          temperature=self.llm.options.get("temperature", 0.0))

    def invoke(self, input, config=None) -> dict:
        question = input.get("input") if isinstance(input, Mapping) else input
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"ToolAgent takes a question string or {{'input': question}}, got {input!r}")
        trace = self.agent.run(self.prompt.invoke({"input": question}))
        steps = [(s.action, s.arguments or {}, s.observation) for s in trace.steps if s.kind != "final"]
        output = trace.answer if trace.stop_reason == "final_answer" else STOPPED
        return {"input": question, "output": output, "intermediate_steps": steps}

    def _draw(self, g, sources):
        model = g.add(self.llm.name, sources)
        tools = g.add(f"tools<{','.join(self.tools)}>", [model])
        g.edges.append((tools, model))
        return [model]
