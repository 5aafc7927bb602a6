"""Training curves: loss histories from :func:`course_lib.training.train` as plotly figures."""

from __future__ import annotations

import plotly.graph_objects as go

from course_lib.training import TrainHistory, smooth


def plot_history(*histories: TrainHistory, names: list[str] | None = None, title: str = "training loss",
                 log_y: bool = False):
    """A plotly figure of one or more loss curves (raw, faint, and smoothed)."""
    names = names or [f"run {i}" for i in range(len(histories))]
    if len(names) != len(histories):
        raise ValueError(f"got {len(histories)} histories but {len(names)} names")
    fig = go.Figure()
    for h, name in zip(histories, names):
        fig.add_scatter(x=h.steps, y=h.losses, name=f"{name} (raw)", opacity=0.3, line=dict(width=1))
        fig.add_scatter(x=h.steps, y=smooth(h.losses), name=name)
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", height=380,
                      yaxis_type="log" if log_y else "linear")
    return fig
