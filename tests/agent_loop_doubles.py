"""Scripted tools and replies shared by the agent-loop tests."""

import time

from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter

from course_lib.agent.tools import Tool, ToolRegistry
from course_lib.chat import ChatReply


def _obj(**props):
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


ADD = Tool("add", "Add two numbers.", _obj(a={"type": "number"}, b={"type": "number"}), lambda a, b: f"{a + b:g}")
UPPER = Tool("upper", "Upper-case a text.", _obj(text={"type": "string"}), lambda text: text.upper())
BOOM = Tool("boom", "Always fails.", _obj(), lambda: 1 / 0)
HANG = Tool("hang", "Never returns in time.", _obj(), lambda: time.sleep(1.0), timeout_s=0.1)
TOOLS = ToolRegistry([ADD, UPPER, BOOM, HANG])
MESSAGES = TypeAdapter(list[ChatCompletionMessageParam])


def reply(text, total=0):
    return ChatReply(text, usage={"prompt_tokens": total - 10, "completion_tokens": 10, "total_tokens": total}
                     if total else {})
