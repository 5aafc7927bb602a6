"""A chain's graph (:meth:`course_lib.chains.Runnable.graph`) drawn with plotly, left to right.

LangChain draws ``chain.get_graph()`` as ASCII or Mermaid; here each node sits in the column of its
longest path from the input, nodes of one column spread vertically, edges are arrows (a loop edge
back to an earlier node in red).
"""

from __future__ import annotations

import plotly.graph_objects as go


def layout(graph) -> list[tuple[float, float]]:
    """(x, y) per node: x = longest path from the input over forward edges, y = rank within that column.

    ``Runnable.graph()`` adds nodes in execution order, so an edge to an earlier node (an agent's tools
    back to its model) is a loop edge and does not push nodes right."""
    depth = [0] * len(graph.nodes)
    for a, b in sorted(graph.edges, key=lambda e: e[1]):
        if a < b:
            depth[b] = max(depth[b], depth[a] + 1)
    columns: dict[int, list[int]] = {}
    for n, x in enumerate(depth):
        columns.setdefault(x, []).append(n)
    pos = [(0.0, 0.0)] * len(graph.nodes)
    for x, members in columns.items():
        for i, n in enumerate(members):
            pos[n] = (float(x), (len(members) - 1) / 2 - i)
    return pos


def _label(name: str) -> str:
    """HTML-escaped; long names wrap before their ``<...>`` part (``RunnableParallel`` / ``<context,question>Input``)."""
    text = name.replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("&lt;", "<br>&lt;", 1) if len(name) > 22 else text


def chain_figure(graph, title: str = "chain graph"):
    """A plotly figure, top to bottom: one labelled box per step, one arrow per edge (loop edges in red)."""
    if not graph.nodes:
        raise ValueError("the graph has no nodes")
    pos = layout(graph)
    xy = [(y * 1.6, -x) for x, y in pos]                 # columns become rows: the chain reads downwards
    fig = go.Figure()
    for a, b in graph.edges:
        (x0, y0), (x1, y1) = xy[a], xy[b]
        back = b <= a
        shift = 0.35 if back else 0.0                     # a loop edge runs beside the forward one
        fig.add_annotation(x=x1 + shift, y=y1, ax=x0 + shift, ay=y0, xref="x", yref="y", axref="x", ayref="y",
                           text="", showarrow=True, arrowhead=3, arrowsize=1.3, standoff=20, startstandoff=20,
                           arrowcolor="#d62728" if back else "#555")
    for (x, y), name in zip(xy, graph.nodes):
        fig.add_annotation(x=x, y=y, text=_label(name), showarrow=False, font=dict(size=12),
                           bgcolor="#e8f0fe", bordercolor="#1f77b4", borderwidth=2, borderpad=6)
    fig.add_scatter(x=[p[0] for p in xy], y=[p[1] for p in xy], mode="markers", marker=dict(size=1, opacity=0),
                    text=graph.nodes, hoverinfo="text", showlegend=False)
    xs, ys = [p[0] for p in xy], [p[1] for p in xy]
    fig.update_layout(title=title, height=110 + 75 * (max(-y for y in ys) + 1), width=720, plot_bgcolor="white",
                      margin=dict(l=20, r=20, t=50, b=20),
                      xaxis=dict(visible=False, range=[min(xs) - 1.6, max(xs) + 1.6]),
                      yaxis=dict(visible=False, range=[min(ys) - 0.6, 0.6]))
    return fig
