"""Prompt templates: a string with ``{variables}`` and a chat prompt from ``(role, template)`` pairs.

Reference design: LangChain's ``PromptTemplate`` and ``ChatPromptTemplate``
(https://python.langchain.com/docs/concepts/prompt_templates/). The f-string syntax is theirs:
``{name}`` is a variable, ``{{`` and ``}}`` are literal braces. Both render exactly what
langchain-core renders for the same template (``tests/test_chains.py``); the chat prompt renders to
OpenAI-format messages (``[{"role": "system", "content": ...}, ...]``), the input of
:class:`course_lib.chat.ChatModel`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from course_lib.chains.base import Runnable

_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ROLE_ALIASES = {"system": "system", "human": "user", "user": "user", "ai": "assistant", "assistant": "assistant"}


def parse_template(template: str) -> list[str | tuple[str]]:
    """Split an f-string template into literal text and ``(name,)`` variable slots."""
    if not isinstance(template, str):
        raise TypeError(f"template must be a str, got {type(template).__name__}")
    parts: list[str | tuple[str]] = []
    pos = 0
    for m in _FIELD.finditer(template):
        parts.append(template[pos:m.start()])
        token = m.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif m.group(1) is None:
            raise ValueError(f"unmatched {token!r} at position {m.start()} in template {template!r} "
                             "(write {{ or }} for a literal brace)")
        elif not _NAME.fullmatch(m.group(1)):
            raise ValueError(f"{{{m.group(1)}}} in template {template!r} is not a variable name "
                             "(letters, digits and _ only)")
        else:
            parts.append((m.group(1),))
        pos = m.end()
    parts.append(template[pos:])
    return [p for p in parts if p != ""]


def render(parts: list, values: Mapping) -> str:
    """Fill the parsed template ``parts`` (see :func:`parse_template`) with ``values``, as LangChain's f-string format."""
    return "".join(p if isinstance(p, str) else str(values[p[0]]) for p in parts)


def _variables(parts) -> list[str]:
    return list(dict.fromkeys(p[0] for p in parts if isinstance(p, tuple)))


class _Template(Runnable):
    input_variables: list[str]

    def _values(self, input) -> dict:
        """The variables' values: a dict, or the bare value when the template has one variable (as LangChain)."""
        if not isinstance(input, Mapping):
            if len(self.input_variables) == 1:
                return {self.input_variables[0]: input}
            raise TypeError(f"{self.name} expects a dict with keys {self.input_variables}, got {type(input).__name__}")
        missing = [v for v in self.input_variables if v not in input]
        if missing:
            raise ValueError(f"{self.name} is missing variables {missing}; expected keys {self.input_variables}, "
                             f"got {sorted(input)}")
        return dict(input)


class PromptTemplate(_Template):
    """``PromptTemplate("Answer: {question}").invoke({"question": "..."})`` → the rendered string."""

    def __init__(self, template: str):
        self.template, self.parts = template, parse_template(template)
        self.input_variables = _variables(self.parts)

    @classmethod
    def from_template(cls, template: str) -> PromptTemplate:
        return cls(template)

    def format(self, **values) -> str:
        return self.invoke(values)

    def invoke(self, input, config=None) -> str:
        return render(self.parts, self._values(input))


class MessagesPlaceholder:
    """A slot for a whole list of messages (a conversation history) inside a chat prompt."""

    def __init__(self, variable_name: str, optional: bool = False):
        if not isinstance(variable_name, str) or not _NAME.fullmatch(variable_name):
            raise ValueError(f"variable_name must be an identifier, got {variable_name!r}")
        self.variable_name, self.optional = variable_name, optional


class ChatPromptTemplate(_Template):
    """``ChatPromptTemplate([("system", "..."), ("human", "{q}")])`` → a list of OpenAI-format messages.

    Roles: ``system``, ``human``/``user``, ``ai``/``assistant``; ``("placeholder", "{history}")`` or a
    :class:`MessagesPlaceholder` inserts a list of messages (optional: missing means empty)."""

    def __init__(self, messages: list):
        if not isinstance(messages, (list, tuple)) or not messages:
            raise ValueError("ChatPromptTemplate needs a non-empty list of (role, template) pairs")
        self.messages: list = []
        for i, m in enumerate(messages):
            if isinstance(m, MessagesPlaceholder):
                self.messages.append(m)
                continue
            if not (isinstance(m, tuple) and len(m) == 2 and isinstance(m[1], str)):
                raise TypeError(f"messages[{i}] must be a (role, template) pair or a MessagesPlaceholder, got {m!r}")
            role, template = m
            if role == "placeholder":
                name = template.strip()
                if not (name.startswith("{") and name.endswith("}")):
                    raise ValueError(f"a placeholder is written ('placeholder', '{{name}}'), got {template!r}")
                self.messages.append(MessagesPlaceholder(name[1:-1], optional=True))
            elif role in ROLE_ALIASES:
                self.messages.append((ROLE_ALIASES[role], parse_template(template)))
            else:
                raise ValueError(f"messages[{i}] has unknown role {role!r}; expected one of "
                                 f"{sorted(ROLE_ALIASES) + ['placeholder']}")
        self.input_variables = list(dict.fromkeys(
            v for m in self.messages
            for v in ([m.variable_name] if isinstance(m, MessagesPlaceholder) and not m.optional
                      else [] if isinstance(m, MessagesPlaceholder) else _variables(m[1]))))

    @classmethod
    def from_messages(cls, messages: list) -> ChatPromptTemplate:
        return cls(messages)

    def invoke(self, input, config=None) -> list[dict]:
        values = self._values(input)
        out: list[dict] = []
        for m in self.messages:
            if isinstance(m, MessagesPlaceholder):
                history = values.get(m.variable_name, [])
                if not isinstance(history, list) or not all(isinstance(h, Mapping) and "role" in h for h in history):
                    raise TypeError(f"placeholder {m.variable_name!r} needs a list of {{'role', 'content'}} dicts, "
                                    f"got {history!r}")
                out.extend(dict(h) for h in history)
            else:
                out.append({"role": m[0], "content": render(m[1], values)})
        return out
