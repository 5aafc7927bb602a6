"""Agents: tool schemas, constrained decoding, the sandbox and tools, ReAct / function-calling / AutoGPT loops."""
