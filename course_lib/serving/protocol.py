"""The request bodies of OpenAI's chat and completion endpoints, and what the server does not support.

Field names and meanings follow the OpenAI API reference. Parameters the server cannot honour
(``logprobs``, ``tools``, ``response_format``, ``n > 1``, penalties...) are refused with a 400 that
names them rather than silently ignored; their "not used" values (``false``, ``null``, ``"none"``,
``{"type": "text"}``...) pass. Other unknown fields (``user``, ``metadata``...) are ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from course_lib.serving.errors import APIError
from course_lib.serving.params import SamplingParams
from course_lib.text_decoding import ROLES

# parameter -> the values that mean "not used" (anything else is refused)
UNSUPPORTED: dict[str, tuple] = {
    "logprobs": (None, False), "top_logprobs": (None, 0), "tools": (None, []), "tool_choice": (None, "none"),
    "parallel_tool_calls": (None,), "functions": (None, []), "function_call": (None, "none"),
    "response_format": (None, {"type": "text"}), "logit_bias": (None, {}), "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0), "echo": (None, False), "best_of": (None, 1), "suffix": (None, ""),
    "audio": (None,), "modalities": (None, ["text"]), "prediction": (None,),
}


class Params(BaseModel):
    """Fields both endpoints share; unknown fields land in ``model_extra`` (see :data:`UNSUPPORTED`)."""
    model_config = ConfigDict(extra="allow")
    model: str
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False
    stream_options: dict | None = None

    def sampling(self) -> SamplingParams:
        """The engine's :class:`SamplingParams`; a 400 naming the parameter when one is unsupported or out of range."""
        for name, unused in UNSUPPORTED.items():
            value = (self.model_extra or {}).get(name)
            if value not in unused:
                raise APIError(400, f"'{name}' is not supported by this server (got {value!r}); leave it out",
                               param=name, code="unsupported_parameter")
        if self.n != 1:
            raise APIError(400, f"only n=1 is supported, got n={self.n}", param="n", code="unsupported_parameter")
        limit = "max_completion_tokens" if self.max_completion_tokens is not None else "max_tokens"
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        try:
            return SamplingParams(getattr(self, limit), self.temperature, self.top_p, self.seed, stop)
        except ValueError as e:
            name, rest = str(e).split(" ", 1)
            name = limit if name == "max_tokens" else name
            raise APIError(400, f"{name} {rest}", param=name) from None


class ToolCallFunction(BaseModel):
    """``function`` of a tool call: its name and its arguments as a JSON string."""
    name: str
    arguments: str


class ToolCall(BaseModel):
    """One entry of an assistant message's ``tool_calls``."""
    model_config = ConfigDict(extra="allow")
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


class Message(BaseModel):
    """One chat message of an OpenAI request: role, content (a string or text parts), tool calls."""
    model_config = ConfigDict(extra="allow")
    role: Literal[ROLES]
    content: str | list[dict] | None = None
    tool_calls: list[ToolCall] | None = None

    def as_dict(self, i: int) -> dict:
        """The message as a plain dict with string content (text parts joined); only text parts are accepted."""
        content = self.content
        if isinstance(content, list):
            if not all(part.get("type") == "text" and isinstance(part.get("text"), str) for part in content):
                raise APIError(400, "only text content parts ({'type': 'text', 'text': ...}) are supported",
                               param=f"messages.{i}.content", code="unsupported_content")
            content = "".join(part["text"] for part in content)
        out = {"role": self.role, "content": content}
        if self.tool_calls:
            out["tool_calls"] = [c.model_dump() for c in self.tool_calls]
        return out


class ChatRequest(Params):
    """Body of ``POST /v1/chat/completions`` (OpenAI API reference): the messages and sampling parameters."""
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(Params):
    """Body of ``POST /v1/completions`` (OpenAI API reference): a raw prompt and sampling parameters."""
    prompt: str | list[str]
