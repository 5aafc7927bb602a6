"""A chain's graph (:meth:`course_lib.chains.Runnable.graph`) drawn with plotly, left to right.

LangChain draws ``chain.get_graph()`` as ASCII or Mermaid; here each node sits in the column of its
first-reached depth from the input (breadth first, so an agent's loop back to the model does not
push nodes right), nodes of one column spread vertically, edges are arrows.
"""

from __future__ import annotations

from collections import deque

import plotly.graph_objects as go


def layout(graph) -> list[tuple[float, float]]:
    """(x, y) per node: x = breadth-first depth from node 0, y = rank within that depth, centred."""
    depth = {0: 0}
    queue = deque([0])
    while queue:
        n = queue.popleft()
        for a, b in graph.edges:
            if a == n and b not in depth:
                depth[b] = depth[n] + 1
                queue.append(b)
    columns: dict[int, list[int]] = {}
    for n in range(len(graph.nodes)):
        columns.setdefault(depth.get(n, 0), []).append(n)
    pos = [(0.0, 0.0)] * len(graph.nodes)
    for x, members in columns.items():
        for i, n in enumerate(members):
            pos[n] = (float(x), (len(members) - 1) / 2 - i)
    return pos


def chain_figure(graph, title: str = "chain graph"):
    """A plotly figure: one box per step, one arrow per edge (a loop edge curves below)."""
    if not graph.nodes:
        raise ValueError("the graph has no nodes")
    pos = layout(graph)
    fig = go.Figure()
    for a, b in graph.edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        back = x1 <= x0 and a != b
        fig.add_annotation(x=x1, y=y1 - (0.15 if back else 0), ax=x0, ay=y0 - (0.15 if back else 0),
                           xref="x", yref="y", axref="x", ayref="y", showarrow=True, arrowhead=3,
                           arrowsize=1.2, standoff=38, startstandoff=38,
                           arrowcolor="#d62728" if back else "#555")
    fig.add_scatter(x=[p[0] for p in pos], y=[p[1] for p in pos], mode="markers+text", text=graph.nodes,
                    textposition="middle center", hoverinfo="text", showlegend=False,
                    marker=dict(size=70, symbol="square", color="#e8f0fe", line=dict(color="#1f77b4", width=2)),
                    textfont=dict(size=10))
    width = max(600, 170 * (max(p[0] for p in pos) + 1))
    fig.update_layout(title=title, width=width, height=320, plot_bgcolor="white",
                      xaxis=dict(visible=False, range=[-0.6, max(p[0] for p in pos) + 0.6]),
                      yaxis=dict(visible=False, range=[min(p[1] for p in pos) - 1, max(p[1] for p in pos) + 1]))
    return fig
