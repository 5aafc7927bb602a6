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
"""

from __future__ import annotations

from functools import lru_cache

ROLES = ("system", "user", "assistant")


@lru_cache(maxsize=8)
def _compile(template: str):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # HF's settings
    return env.from_string(template)


def check_messages(messages: list[dict]) -> None:
    """Each message is ``{"role": one of ROLES, "content": str}``."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) < {"role", "content"}:
            raise ValueError(f"messages[{i}] must be a dict with 'role' and 'content', got {m!r}")
        if m["role"] not in ROLES:
            raise ValueError(f"messages[{i}]['role'] must be one of {ROLES}, got {m['role']!r}")
        if not isinstance(m["content"], str):
            raise TypeError(f"messages[{i}]['content'] must be a str, got {type(m['content']).__name__}")


def render_chat(messages: list[dict], template: str, add_generation_prompt: bool = True,
                bos_token: str = "<|im_start|>", eos_token: str = "<|im_end|>") -> str:
    """The prompt text for ``messages`` under the Jinja2 ``template``."""
    check_messages(messages)
    if not isinstance(template, str) or not template:
        raise TypeError("template must be a non-empty Jinja2 template string")
    return _compile(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                     bos_token=bos_token, eos_token=eos_token)
