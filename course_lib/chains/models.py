"""A chat model as a step of a chain, over the course's one :class:`course_lib.chat.ChatModel` interface.

Reference design: LangChain's chat models as Runnables (``BaseChatModel.invoke/stream``,
``.bind(stop=...)``, ``.bind_tools(...)``; https://python.langchain.com/docs/concepts/chat_models/).
The backend is whatever :class:`~course_lib.chat.ChatModel` it wraps: our SmolLM2
(:class:`~course_lib.chat.LocalChatModel`), any OpenAI-compatible endpoint
(:class:`~course_lib.chat.OpenAIChatModel`) or the test double. ``invoke`` returns the
:class:`~course_lib.chat.ChatReply`; ``stream`` yields text pieces as the model writes them.
"""

from __future__ import annotations

from collections.abc import Mapping

from course_lib.chains.base import Runnable
from course_lib.chat import ChatModel, ChatReply

OPTIONS = ("tools", "max_tokens", "temperature", "top_p", "stop", "seed")


def as_messages(input) -> list[dict]:
    """A chat input → OpenAI messages: a string is one user turn; a list of ``{"role", "content"}`` dicts
    (what :class:`~course_lib.chains.prompts.ChatPromptTemplate` renders) stays as it is."""
    if isinstance(input, str):
        return [{"role": "user", "content": input}]
    if isinstance(input, list) and all(isinstance(m, Mapping) for m in input):
        return [dict(m) for m in input]
    raise TypeError(f"a chat model takes a str or a list of {{'role', 'content'}} messages, got {type(input).__name__}"
                    " (put a ChatPromptTemplate before it to build messages from a dict)")


class ChatModelRunnable(Runnable):
    """``ChatModelRunnable(LocalChatModel(), max_tokens=64)``: messages in, a ``ChatReply`` out."""

    def __init__(self, model: ChatModel, **options):
        if not isinstance(model, ChatModel):
            raise TypeError(f"model must be a course_lib.chat.ChatModel (chat(...) and stream(...)), "
                            f"got {type(model).__name__}")
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise ValueError(f"unknown chat options {sorted(unknown)}; expected some of {list(OPTIONS)}")
        self.model, self.options = model, options

    @property
    def name(self) -> str:
        return f"ChatModel<{self.model.name}>"

    def bind(self, **options) -> ChatModelRunnable:
        """A copy with more call options (``stop``, ``max_tokens``, ``tools``...), like LangChain's ``bind``."""
        return ChatModelRunnable(self.model, **{**self.options, **options})

    def bind_tools(self, tools: list) -> ChatModelRunnable:
        """Offer tools: OpenAI tool specs, :class:`course_lib.agent.tools.Tool` or
        :class:`~course_lib.chains.agent.ToolRunnable` objects."""
        return self.bind(tools=[t.spec() if hasattr(t, "spec") else t.to_openai() if hasattr(t, "to_openai") else t
                                for t in tools])

    def chat(self, messages, **options) -> ChatReply:
        """The model's ``chat`` with the bound options (and ``options`` over them): a bound runnable is a ChatModel too."""
        return self.model.chat(as_messages(messages), **{**self.options, **options})

    def invoke(self, input, config=None) -> ChatReply:
        return self.chat(input)

    def stream(self, input, config=None):
        options = {k: v for k, v in self.options.items() if k != "tools"}  # a streamed reply is text
        yield from self.model.stream(as_messages(input), **options)
