"""Training curves as plotly figures: loss histories from :func:`course_lib.training.train`, and
TensorBoard scalars read back by :func:`course_lib.tracking.read_scalars`."""

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


def plot_scalars(scalars: dict[str, list[tuple[int, float]]], tags: list[str] | None = None,
                 title: str = "训练曲线 (TensorBoard scalars)"):
    """One subplot row per tag of ``{tag: [(step, value), …]}`` (:func:`course_lib.tracking.read_scalars`)."""
    from plotly.subplots import make_subplots

    tags = tags or sorted(scalars)
    missing = [t for t in tags if t not in scalars]
    if missing:
        raise ValueError(f"tags {missing} are not in the scalars; they hold {sorted(scalars)}")
    fig = make_subplots(rows=len(tags), cols=1, shared_xaxes=True, subplot_titles=tags)
    for row, tag in enumerate(tags, start=1):
        steps, values = zip(*scalars[tag])
        fig.add_scatter(x=steps, y=[float(f"{v:.4g}") for v in values], name=tag, mode="lines", row=row, col=1)
    fig.update_layout(title=title, height=200 * len(tags) + 80, showlegend=False)
    fig.update_xaxes(title_text="step", row=len(tags), col=1)
    return fig
