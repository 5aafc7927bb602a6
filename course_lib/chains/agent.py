"""Tools and a tool-calling agent chain, built from the chain pieces.

Reference design: LangChain's ``@tool`` (a function → name, description, JSON-Schema arguments;
https://python.langchain.com/docs/concepts/tools/) and the classic ``AgentExecutor`` loop
(model with tools bound → run the requested tools → feed results back → until a plain answer or
``max_steps``; its output dict ``{"input", "output", "intermediate_steps"}``). The model is any
:class:`course_lib.chat.ChatModel`; tool calls use OpenAI's format, which
:class:`~course_lib.chat.LocalChatModel` maps to the course's ``{"tool": ..., "args": {...}}`` JSON.
Chapter 10 builds the full ReAct and function-calling loops (``course_lib.agent``); this is the
same idea written as a chain.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping

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


class Tool(Runnable):
    """A function the model may call: ``invoke({"arg": value})`` → ``func(arg=value)``."""

    def __init__(self, func: Callable, name: str | None = None, description: str | None = None):
        if not callable(func):
            raise TypeError(f"a tool wraps a callable, got {type(func).__name__}")
        self.func = func
        self._name = name or func.__name__
        # the docstring before its "Args:" section, whitespace collapsed (as langchain-core's convert_to_openai_tool)
        self.description = description or " ".join((inspect.getdoc(func) or "").split("Args:")[0].split())
        params = inspect.signature(func).parameters.values()
        docs = arg_descriptions(inspect.getdoc(func) or "")
        try:
            hints = typing.get_type_hints(func)
        except (NameError, TypeError):  # an annotation that does not resolve: treat the argument as a string
            hints = {}
        self.parameters = {
            "type": "object",
            "properties": {p.name: {**({"description": docs[p.name]} if p.name in docs else {}),
                                    **({} if p.default is inspect.Parameter.empty else {"default": p.default}),
                                    "type": JSON_TYPES.get(hints.get(p.name), "string")} for p in params},
            "required": [p.name for p in params if p.default is inspect.Parameter.empty],
        }

    @property
    def name(self) -> str:
        return self._name

    def spec(self) -> dict:
        """The OpenAI tool entry ``{"type": "function", "function": {name, description, parameters}}``."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    def invoke(self, input, config=None):
        if not isinstance(input, Mapping):
            raise TypeError(f"tool {self.name!r} takes a dict of arguments, got {type(input).__name__}")
        missing = [a for a in self.parameters["required"] if a not in input]
        unknown = [a for a in input if a not in self.parameters["properties"]]
        if missing or unknown:
            raise ValueError(f"tool {self.name!r}: missing arguments {missing}, unknown arguments {unknown}; "
                             f"expected {list(self.parameters['properties'])}")
        return self.func(**input)


def tool(func: Callable) -> Tool:
    """Decorator: ``@tool`` turns a typed, documented function into a :class:`Tool`."""
    return Tool(func)


class ToolAgent(Runnable):
    """question → prompt → (model with tools ⇄ tools)* → ``{"input", "output", "intermediate_steps"}``.

    ``prompt`` renders the first messages from ``{"input": question}``; few-shot turns in it show a
    small model the call format (chapter 12 does that for SmolLM2)."""

    def __init__(self, model, tools: list, *, prompt: ChatPromptTemplate = AGENT_PROMPT, max_steps: int = 5,
                 **options):
        tools = [t if isinstance(t, Tool) else Tool(t) for t in tools]
        if not tools:
            raise ValueError("ToolAgent needs at least one tool")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
        if not isinstance(prompt, ChatPromptTemplate) or prompt.input_variables != ["input"]:
            raise ValueError("prompt must be a ChatPromptTemplate whose only variable is {input} (the question)")
        llm = model if isinstance(model, ChatModelRunnable) else ChatModelRunnable(model, **options)
        self.llm, self.tools = llm.bind_tools(tools), {t.name: t for t in tools}
        self.prompt, self.max_steps = prompt, max_steps

    def run_tool(self, name: str, arguments: dict, config=None) -> str:
        """A tool's result as text; errors go back to the model as text too (it may try again)."""
        if name not in self.tools:
            return f"Error: unknown tool {name!r}; available: {sorted(self.tools)}"
        try:
            return str(self.tools[name].invoke(arguments, config))
        except Exception as e:  # the model sees its mistake instead of the chain crashing
            return f"Error: {type(e).__name__}: {e}"

    def invoke(self, input, config=None) -> dict:
        question = input.get("input") if isinstance(input, Mapping) else input
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"ToolAgent takes a question string or {{'input': question}}, got {input!r}")
        messages = self.prompt.invoke({"input": question})
        steps = []
        for _ in range(self.max_steps):
            reply = self.llm.invoke(messages, config)
            if not reply.tool_calls:
                return {"input": question, "output": reply.content, "intermediate_steps": steps}
            messages.append(reply.message())
            for call in reply.tool_calls:
                result = self.run_tool(call.name, call.arguments, config)
                steps.append((call.name, call.arguments, result))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        return {"input": question, "output": STOPPED, "intermediate_steps": steps}

    def _draw(self, g, sources):
        model = g.add(self.llm.name, sources)
        tools = g.add(f"tools<{','.join(self.tools)}>", [model])
        g.edges.append((tools, model))
        return [model]
