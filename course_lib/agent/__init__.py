"""Agents (chapter 10): tools, a Python sandbox, function calling, and the ReAct and AutoGPT loops.

The pieces, bottom to top::

    from course_lib import agent
    tools = agent.task_tools()                                   # calculator, python (sandbox), units, dates, search
    trace = agent.ReActAgent(chat_model, tools).run("What is 17 * 23, plus 5?")
    episode, trace = agent.run_episode(agent.load_tasks("test")[0], "react", chat_model, tools, "free")

Scripted experts (:mod:`.experts`) turn the task set (:mod:`.tasks`) into demonstrations in each loop's own
format; :mod:`.evaluate` scores a loop on the tasks; the turn grammars live in :mod:`course_lib.constrained.turns`.
"""

from course_lib.agent.autogpt import AUTOGPT_PROMPT, FINISH, AutoGPTAgent
from course_lib.agent.dispatch import ToolResult, describe_tools, run_tool
from course_lib.agent.evaluate import (
    Episode,
    format_table,
    local_conditions,
    run_episode,
    success_table,
    turn_grammar,
)
from course_lib.agent.experts import FORMATS, ExpertModel, demonstrations, make_agent
from course_lib.agent.function_calling import FunctionCallingAgent
from course_lib.agent.memory import AgentMemory, minilm_embedder
from course_lib.agent.react import REACT_PROMPT, ReActAgent, parse_react
from course_lib.agent.tasks import Task, is_correct, task_tools
from course_lib.agent.tasks import load as load_tasks
from course_lib.agent.tools import (
    Tool,
    ToolRegistry,
    calculator_tool,
    convert_units_tool,
    date_tools,
    default_tools,
    python_tool,
    search_tool,
)
from course_lib.agent.trace import Step, Trace

__all__ = ["AUTOGPT_PROMPT", "FINISH", "FORMATS", "REACT_PROMPT", "AgentMemory", "AutoGPTAgent", "Episode", "ExpertModel",
           "FunctionCallingAgent", "ReActAgent", "Step", "Task", "Tool", "ToolRegistry", "ToolResult", "Trace",
           "calculator_tool", "convert_units_tool", "date_tools", "default_tools", "demonstrations", "describe_tools",
           "format_table", "is_correct", "load_tasks", "local_conditions", "make_agent", "minilm_embedder",
           "parse_react", "python_tool", "run_episode", "run_tool", "search_tool", "success_table", "task_tools",
           "turn_grammar"]
