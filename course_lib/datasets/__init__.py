"""The datasets the library reads, shipped inside the package and read with :mod:`importlib.resources`.

They travel with ``course_lib`` (package data in ``pyproject.toml``), so a plain, non-editable
``pip install`` can load them; nothing reaches back into the source tree. How each file was made, and
by which command, is in ``README.md`` beside them; the makers that are not library code live in the
repository's ``data/``::

    rows = dataset("tool_calls.jsonl").read_text(encoding="utf-8").splitlines()
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

FILES = (
    "stdlib_modules.txt",           # course_lib.corpus: the pinned module list
    "stdlib_docstrings.jsonl.gz",   # course_lib.corpus: the pinned docstring texts
    "tool_calls.jsonl",             # course_lib.tool_calls: the tool-call task (chapters 05, 10)
    "agent_tasks.jsonl",            # course_lib.agent.tasks: the multi-step agent tasks (chapter 10)
    "rag/questions.jsonl",          # course_lib.rag.questions: the chapter-09 question set
    "rag/rerank_study.json",        # chapter 09: the recorded reranking study over that set
    "rag/answer_labels.jsonl",      # course_lib.rag.answer_metrics: hand labels of 40 dev answers
    "rag/answer_table.json",        # chapter 09: the recorded answer table on the test split
)


def dataset(name: str) -> Traversable:
    """The shipped file ``name`` (one of :data:`FILES`); a :class:`pathlib.Path` in an ordinary install."""
    if name not in FILES:
        raise ValueError(f"name must be one of {FILES}, got {name!r}")
    node = files(__name__)
    for part in name.split("/"):
        node = node / part
    return node


__all__ = ["FILES", "dataset"]
