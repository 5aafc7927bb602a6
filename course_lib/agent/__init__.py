"""Agents: tools, a Python sandbox, function calling, constrained decoding and the agent loops."""
