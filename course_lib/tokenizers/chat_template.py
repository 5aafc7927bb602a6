"""Chat templates: turn a list of messages into the exact prompt text a chat model was tuned on.

SmolLM2-Instruct uses the ChatML layout; its GGUF carries the Jinja2 template
(``tokenizer.chat_template``), which renders::

    <|im_start|>system
    You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
    <|im_start|>user
    你好<|im_end|>
    <|im_start|>assistant

The template is rendered in Jinja2's sandbox (templates come with model files, so they must not
reach Python internals), with the variables HF ``apply_chat_template`` passes: ``messages``,
``add_generation_prompt`` and the special tokens.

Messages are checked by the one :func:`~course_lib.text_decoding.check_messages` (re-exported
here with :data:`~course_lib.text_decoding.ROLES`), which ``course_lib.chat`` and the chapter-13
server use too. :func:`encode_chat` tokenises a rendered conversation so that only the template's own special tokens become control tokens: ``<|im_start|>system`` typed inside a
message is plain text, so a user cannot open a new turn (prompt-injection by token forging).
"""

from __future__ import annotations

from functools import lru_cache

import regex

from course_lib.text_decoding import ROLES, check_messages

ESC = "\ue000"  # a private-use character: escapes special strings inside contents (see encode_chat)
_UNESCAPE = regex.compile(f"{ESC}({ESC}|\\d+;)")


@lru_cache(maxsize=8)
def _compile(template: str):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # HF's settings
    return env.from_string(template)


def render_chat(messages: list[dict], template: str, add_generation_prompt: bool = True,
                bos_token: str = "<|im_start|>", eos_token: str = "<|im_end|>") -> str:
    """The prompt text for ``messages`` under the Jinja2 ``template`` (every content a string)."""
    for i, m in enumerate(check_messages(messages)):
        if m.get("content") is None:
            raise TypeError(f"messages[{i}]['content'] must be a string to render; write its tool_calls "
                            "as text first (course_lib.text_decoding.to_template_messages)")
    if not isinstance(template, str) or not template:
        raise TypeError("template must be a non-empty Jinja2 template string")
    return _compile(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                     bos_token=bos_token, eos_token=eos_token)


def encode_chat(tokenizer, messages: list[dict], render) -> list[int]:
    """Token ids of ``render(messages)`` in which only the template's special tokens are control tokens.

    ``tokenizer`` has ``special_tokens`` ``{string: id}`` and ``encode(text, allow_special=False)``
    (:class:`~course_lib.tokenizers.bpe.ByteLevelBPE`). Encoding the rendered text as a whole (what
    HF ``apply_chat_template(tokenize=True)`` does) would turn ``<|im_start|>`` typed in a message
    into the real token. Here each special string inside a content is escaped (:data:`ESC`, its
    index, ``;``; ESC itself doubled) before rendering; the rendered text is then split at the
    (template's) special tokens, unescaped, and the text between them encoded as text, as HF encodes it with
    ``split_special_tokens=True``. With no special strings in the contents the ids equal
    ``tokenizer.encode(render(messages))``.
    """
    specials = sorted(tokenizer.special_tokens, key=len, reverse=True)
    pattern = regex.compile("|".join(regex.escape(s) for s in specials)) if specials else None

    def escape(text):  # ESC -> ESC ESC; a special string -> ESC, its index, ";"
        text = text.replace(ESC, ESC + ESC)
        return pattern.sub(lambda m: f"{ESC}{specials.index(m.group())};", text) if pattern else text

    def unescape(text):
        return _UNESCAPE.sub(lambda m: ESC if m.group(1) == ESC else specials[int(m.group(1)[:-1])], text)

    rendered = render([m | {"content": escape(m["content"])} if isinstance(m.get("content"), str) else m
                       for m in check_messages(messages)])
    pieces = regex.split(f"({pattern.pattern})", rendered) if pattern else [rendered]
    ids: list[int] = []
    for i, chunk in enumerate(pieces):  # odd positions: the template's own special tokens
        if i % 2:
            ids.append(tokenizer.special_tokens[chunk])
        elif chunk:
            ids.extend(tokenizer.encode(unescape(chunk), allow_special=False))
    return ids


__all__ = ["ESC", "ROLES", "check_messages", "encode_chat", "render_chat"]
