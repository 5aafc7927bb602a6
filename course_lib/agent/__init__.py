"""Agents (chapter 10): tools, a sandbox, constrained decoding, ReAct, function calling and an AutoGPT-style loop."""
