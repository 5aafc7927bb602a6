"""Agents (chapter 10): tools, a Python sandbox, function calling, and the ReAct and AutoGPT loops.

The pieces, bottom to top::

    from course_lib import agent
    tools = agent.task_tools()                                   # calculator, python (sandbox), units, dates, search
    trace = agent.ReActAgent(chat_model, tools).run("What is 17 * 23, plus 5?")
    episode, trace = agent.run_episode(agent.load_tasks("test")[0], "react", chat_model, tools, "free")

Scripted experts (:mod:`.experts`) turn the task set (:mod:`.tasks`) into demonstrations in each loop's own
format; :mod:`.evaluate` scores a loop on the tasks; the turn grammars live in :mod:`course_lib.constrained.turns`.

Names are imported lazily: the sandbox (:mod:`.sandbox`) must import in a bare interpreter (its
unprivileged path runs the system ``python3`` without site-packages), so importing the package may not
pull in ``jsonschema``, torch or the models.
"""

from course_lib.lazy import lazy_exports

_HOME = {"AUTOGPT_PROMPT": "autogpt", "AgentMemory": "memory", "AutoGPTAgent": "autogpt", "Episode": "evaluate",
         "ExpertModel": "experts", "FINISH": "autogpt", "FORMATS": "experts",
         "FunctionCallingAgent": "function_calling", "REACT_PROMPT": "react", "ReActAgent": "react",
         "Step": "trace", "Task": "tasks", "Tool": "tools", "ToolRegistry": "tools", "ToolResult": "dispatch",
         "Trace": "trace", "calculator_tool": "tools", "convert_units_tool": "tools", "date_tools": "tools",
         "default_tools": "tools", "demonstrations": "experts", "describe_tools": "dispatch",
         "format_table": "evaluate", "is_correct": "tasks", "load_tasks": "tasks:load",
         "local_conditions": "evaluate", "make_agent": "experts", "minilm_embedder": "memory",
         "parse_react": "react", "python_tool": "tools", "run_episode": "evaluate", "run_tool": "dispatch",
         "search_tool": "tools", "success_table": "evaluate", "task_tools": "tasks", "turn_grammar": "evaluate"}
__all__ = sorted(_HOME)

__getattr__ = lazy_exports(__name__, _HOME)
