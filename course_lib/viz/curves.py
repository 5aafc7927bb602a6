"""Training curves: loss histories from :func:`course_lib.training.train` as plotly figures."""

from __future__ import annotations

import plotly.graph_objects as go

from course_lib.training import TrainHistory, smooth


def plot_history(*histories: TrainHistory, names: list[str] | None = None, title: str = "training loss",
                 log_y: bool = False):
    """A plotly figure of one or more loss curves (raw, faint, and smoothed), losses to 4 significant digits."""
    names = names or [f"run {i}" for i in range(len(histories))]
    if len(names) != len(histories):
        raise ValueError(f"got {len(histories)} histories but {len(names)} names")
    fig = go.Figure()
    # a saved notebook stays small at full size: 4 significant digits, evenly spaced steps as x0 + dx
    short = lambda values: [float(f"{v:.4g}") for v in values]
    for h, name in zip(histories, names):
        s = h.steps
        even = len(s) > 1 and all(b - a == s[1] - s[0] for a, b in zip(s, s[1:]))
        x = dict(x0=s[0], dx=s[1] - s[0]) if even else dict(x=s)
        fig.add_scatter(**x, y=short(h.losses), name=f"{name} (raw)", opacity=0.3, line=dict(width=1))
        fig.add_scatter(**x, y=short(smooth(h.losses)), name=name)
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", height=380,
                      yaxis_type="log" if log_y else "linear")
    return fig
