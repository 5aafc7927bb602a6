"""Agent traces as plotly figures: a step table and a timeline of model and tool time.

The data is :class:`course_lib.agent.trace.Trace`; this module only draws it (the agent package
stays free of plotting libraries).
"""

from __future__ import annotations

import plotly.graph_objects as go

from course_lib.agent.trace import Trace

KIND_COLOURS = {"tool": "#2ca02c", "final": "#1f77b4", "error": "#d62728", "stop": "#7f7f7f"}


def trace_table(trace: Trace, width: int = 70, title: str | None = None) -> go.Figure:
    """One row per step: kind, thought, action (with arguments), observation, tokens, seconds."""
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be a course_lib.agent.trace.Trace, got {type(trace).__name__}")
    rows = trace.rows(width)
    columns = list(rows[0]) if rows else ["step"]
    fills = [[KIND_COLOURS[r["kind"]] + "22" for r in rows]] * len(columns)
    fig = go.Figure(go.Table(
        columnwidth=[30, 40, 160, 160, 200, 45, 50, 45][:len(columns)],
        header=dict(values=columns, align="left", fill_color="#e8e8e8"),
        cells=dict(values=[[r[c] for r in rows] for c in columns], align="left", fill_color=fills, height=24)))
    fig.update_layout(title=title or f"{trace.task[:60]} → {trace.stop_reason}, {trace.tokens} tokens",
                      height=120 + 48 * max(len(rows), 1), margin=dict(l=10, r=10, t=50, b=10))
    return fig


def trace_timeline(trace: Trace, title: str | None = None) -> go.Figure:
    """Horizontal bars per step: time in the model, then time in the tool; colour = step kind."""
    if not isinstance(trace, Trace):
        raise TypeError(f"trace must be a course_lib.agent.trace.Trace, got {type(trace).__name__}")
    fig = go.Figure()
    labels = [f"{s.index}: {s.action[:24]}" for s in trace.steps]
    fig.add_bar(name="model", orientation="h", y=labels, base=[round(s.start, 4) for s in trace.steps],
                x=[round(s.model_seconds, 4) for s in trace.steps],
                marker_color=[KIND_COLOURS[s.kind] for s in trace.steps],
                text=[f"{s.tokens} tok" for s in trace.steps], textposition="inside",
                hovertext=[s.thought[:200] for s in trace.steps])
    fig.add_bar(name="tool", orientation="h", y=labels,
                base=[round(s.start + s.model_seconds, 4) for s in trace.steps],
                x=[round(s.tool_seconds, 4) for s in trace.steps], marker_color="#ff7f0e",
                hovertext=[s.observation[:200] for s in trace.steps])
    fig.update_layout(title=title or f"timeline: {trace.task[:60]}", barmode="overlay", xaxis_title="seconds",
                      yaxis=dict(autorange="reversed"), height=160 + 36 * max(len(trace.steps), 1))
    return fig


__all__ = ["trace_table", "trace_timeline"]
