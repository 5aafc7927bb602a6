"""A chain's picture as data (LangChain's ``Runnable.get_graph()``); ``course_lib.viz.chain_graph`` draws it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Graph:
    """A chain's picture as data: node labels and directed edges (``get_graph()`` in LangChain)."""
    nodes: list[str] = field(default_factory=list)
    edges: list[tuple[int, int]] = field(default_factory=list)

    def add(self, label: str, sources: Iterable[int] = ()) -> int:
        self.nodes.append(label)
        node = len(self.nodes) - 1
        self.edges.extend((s, node) for s in sources)
        return node
