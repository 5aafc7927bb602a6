"""手撕大模型 (LLMs by Hand): the shared library behind the course notebooks."""
