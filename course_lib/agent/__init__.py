"""Agents (chapter 10): tools, a Python sandbox, function calling, and the ReAct and AutoGPT loops."""
