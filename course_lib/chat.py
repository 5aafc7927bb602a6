"""Chat models behind one interface: our SmolLM2 on the CPU, or any OpenAI-compatible endpoint.

The agent, WebGPT and chain chapters talk to a :class:`ChatModel` and never to a backend directly,
so a learner who points ``OPENAI_BASE_URL`` at a bigger model (or at the course's own server from
chapter 13) gets better agents without changing code. Messages and tools use OpenAI's chat format
(``{"role": ..., "content": ...}``; tools as ``{"type": "function", "function": {name, description,
parameters}}`` JSON Schema), the de-facto standard every engine speaks.

- :class:`LocalChatModel`: SmolLM2's chat template → :func:`course_lib.generation.generate_tokens`
  (the shared decoding interface). A 135M model has no native tool calling, so tools are listed in
  the system message and a reply that is one JSON object ``{"tool": name, "args": {...}}`` (the
  course's format from :mod:`course_lib.tool_calls`, the one chapter 05's LoRA adapter learns)
  becomes a tool call; ``role: tool`` results come back as user turns (its template has no tool role),
  :func:`~course_lib.text_decoding.to_template_messages`. Messages are checked by the one
  :func:`~course_lib.text_decoding.check_messages` and the reply is detokenised, stop strings
  included, by :class:`~course_lib.text_decoding.TextStream` (all three re-exported or used from
  :mod:`course_lib.text_decoding`, the layer the server shares).
- :class:`OpenAIChatModel`: the official ``openai`` client; base URL, key and model from arguments
  or the environment (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``COURSE_CHAT_MODEL``).
- :class:`ScriptedChatModel`: a test double that replays a fixed transcript and records what it saw.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from course_lib.text_decoding import (
    TextStream,
    check_messages,
    check_stop,
    to_template_messages,
    tools_system_prompt,
)
from course_lib.tokenizers.chat_template import encode_chat


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model asked for: tool name, parsed arguments and a call id (OpenAI ``tool_calls`` entry)."""
    name: str
    arguments: dict
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:12]}")

    def to_openai(self) -> dict:
        """The ``tool_calls`` entry of an OpenAI assistant message (arguments as a JSON string)."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": json.dumps(self.arguments)}}


@dataclass(frozen=True)
class ChatReply:
    """One assistant reply as the OpenAI chat API returns it: content, tool calls, finish reason and usage."""
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"          # "stop", "length" or "tool_calls", as OpenAI reports it
    usage: dict = field(default_factory=dict)  # prompt_tokens, completion_tokens, total_tokens

    def message(self) -> dict:
        """The assistant message to append to the conversation (OpenAI format)."""
        msg = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            msg["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        return msg


@runtime_checkable
class ChatModel(Protocol):
    """What agents and chains call. ``stream`` yields the reply's text in pieces."""

    name: str

    def chat(self, messages: list[dict], *, tools: list[dict] | None = None, max_tokens: int = 256,
             temperature: float = 0.0, top_p: float | None = None, stop: list[str] | None = None,
             seed: int | None = None) -> ChatReply: ...

    def stream(self, messages: list[dict], **kwargs) -> Iterator[str]: ...


def _check_options(max_tokens, stop) -> tuple[str, ...]:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    return check_stop(stop)


def parse_tool_call(text: str, tools: list[dict]) -> ToolCall | None:
    """The call in ``text`` when it is one JSON object ``{"tool": <known tool>, "args": {...}}``."""
    try:
        obj = json.loads(text.strip())
    except json.JSONDecodeError:
        return None
    names = {t.get("function", t)["name"] for t in tools}
    if not isinstance(obj, dict) or obj.get("tool") not in names or not isinstance(obj.get("args"), dict):
        return None
    return ToolCall(obj["tool"], obj["args"])


class LocalChatModel:
    """SmolLM2-135M-Instruct through the course's own decoder (loaded on first use).

    ``constraint(messages, tools)``, if given, is called before each reply and returns a logits
    processor for :func:`~course_lib.generation.generate_tokens` (or ``None`` for free text), e.g. a
    grammar that lets the model write only a valid tool call (:mod:`course_lib.constrained.tool_calls`).
    """

    def __init__(self, model=None, tokenizer=None, name: str = "smollm2-135m-instruct", constraint=None):
        if constraint is not None and not callable(constraint):
            raise TypeError(f"constraint must be a callable (messages, tools) -> logits processor or None, "
                            f"got {type(constraint).__name__}")
        self.name, self._model, self._tokenizer, self.constraint = name, model, tokenizer, constraint

    @property
    def model(self):
        if self._model is None:
            from course_lib.pretrained import smollm2
            self._model = smollm2()
        return self._model

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from course_lib.pretrained import smollm2_tokenizer
            self._tokenizer = smollm2_tokenizer()
        return self._tokenizer

    def prompt_ids(self, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
        """Token ids of the chat prompt, ending with the assistant header (special strings in contents stay text)."""
        from course_lib.pretrained import smollm2_chat_prompt
        return encode_chat(self.tokenizer, to_template_messages(messages, tools), smollm2_chat_prompt)

    def _pieces(self, messages, tools=None, max_tokens=256, temperature=0.0, top_p=None, stop=None,
                seed=None, state: dict | None = None) -> Iterator[str]:
        """Yield text pieces; a stop string ends the reply (not included); ``state`` gets counts and reason."""
        from course_lib.generation import generate_tokens, model_device
        stop = _check_options(max_tokens, stop)
        tok = self.tokenizer
        ids = self.prompt_ids(messages, tools)
        ends = [tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")]
        device = model_device(self.model)                # the prompt and the sampler's generator go where the model is
        generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)
        state = {} if state is None else state
        state.update(prompt_tokens=len(ids), completion_tokens=0, finish_reason="length")
        text = TextStream(tok, stop)
        processor = self.constraint(messages, tools) if self.constraint is not None else None
        prompt = torch.tensor([ids], device=device)                                     # (1, T)
        for token in generate_tokens(self.model, prompt, max_tokens, temperature=temperature,
                                     top_p=top_p, stop_tokens=ends, generator=generator, logits_processor=processor):
            state["completion_tokens"] += 1
            if int(token[0]) in ends:
                state["finish_reason"] = "stop"
                break
            if piece := text.push(int(token[0])):
                yield piece
            if text.stopped:
                state["finish_reason"] = "stop"
                return
        if piece := text.finish():
            yield piece

    def chat(self, messages, *, tools=None, max_tokens=256, temperature=0.0, top_p=None, stop=None,
             seed=None) -> ChatReply:
        state: dict = {}
        text = "".join(self._pieces(messages, tools, max_tokens, temperature, top_p, stop, seed, state))
        usage = {"prompt_tokens": state["prompt_tokens"], "completion_tokens": state["completion_tokens"],
                 "total_tokens": state["prompt_tokens"] + state["completion_tokens"]}
        call = parse_tool_call(text, tools) if tools else None
        if call is not None:
            return ChatReply("", (call,), "tool_calls", usage)
        return ChatReply(text, (), state["finish_reason"], usage)

    def stream(self, messages, **kwargs) -> Iterator[str]:
        yield from self._pieces(messages, **kwargs)


class OpenAIChatModel:
    """Any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, the course's chapter-13 server)."""

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 client=None, timeout: float = 60.0):
        from openai import OpenAI
        self.name = model or os.environ.get("COURSE_CHAT_MODEL", "smollm2-135m-instruct")
        self.client = client or OpenAI(base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
                                       api_key=api_key or os.environ.get("OPENAI_API_KEY", "not-needed"),
                                       timeout=timeout)

    def _request(self, messages, tools, max_tokens, temperature, top_p, stop, seed) -> dict:
        stop = _check_options(max_tokens, stop)
        kwargs = {"model": self.name, "messages": check_messages(messages), "max_tokens": max_tokens,
                  "temperature": temperature}
        kwargs.update({k: v for k, v in (("tools", tools), ("top_p", top_p), ("stop", list(stop) or None),
                                          ("seed", seed)) if v is not None})
        return kwargs

    def chat(self, messages, *, tools=None, max_tokens=256, temperature=0.0, top_p=None, stop=None,
             seed=None) -> ChatReply:
        response = self.client.chat.completions.create(
            **self._request(messages, tools, max_tokens, temperature, top_p, stop, seed))
        choice = response.choices[0]
        calls = tuple(ToolCall(c.function.name, json.loads(c.function.arguments or "{}"), c.id)
                      for c in (choice.message.tool_calls or ()))
        usage = response.usage.model_dump() if response.usage else {}
        return ChatReply(choice.message.content or "", calls, choice.finish_reason or "stop", usage)

    def stream(self, messages, *, tools=None, max_tokens=256, temperature=0.0, top_p=None, stop=None,
               seed=None) -> Iterator[str]:
        chunks = self.client.chat.completions.create(
            stream=True, **self._request(messages, tools, max_tokens, temperature, top_p, stop, seed))
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content


class ScriptedChatModel:
    """A test double: replays ``replies`` (strings or :class:`ChatReply`) in order and records each request."""

    def __init__(self, replies, name: str = "scripted"):
        self.name, self.replies, self.requests = name, list(replies), []

    def chat(self, messages, *, tools=None, max_tokens=256, **kwargs) -> ChatReply:
        _check_options(max_tokens, kwargs.get("stop"))
        self.requests.append({"messages": [dict(m) for m in check_messages(messages)], "tools": tools})
        if len(self.requests) > len(self.replies):
            raise RuntimeError(f"ScriptedChatModel ran out of replies after {len(self.replies)} turns")
        reply = self.replies[len(self.requests) - 1]
        if isinstance(reply, ChatReply):
            return reply
        call = parse_tool_call(reply, tools) if tools else None
        return ChatReply("", (call,), "tool_calls") if call else ChatReply(reply)

    def stream(self, messages, **kwargs) -> Iterator[str]:
        yield self.chat(messages, **kwargs).content


__all__ = ["ChatModel", "ChatReply", "LocalChatModel", "OpenAIChatModel", "ScriptedChatModel", "ToolCall",
           "check_messages", "parse_tool_call", "to_template_messages", "tools_system_prompt"]
