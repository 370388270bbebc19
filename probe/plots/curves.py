"""Curves over training steps: drift per position, the loss, travel across seeds."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from probe.plots.inputs import takes
from probe.plots.style import PALETTE, palette

DRIFT_METRICS = {
    "cos_to_init": "cosine to the initial vector",
    "norm": "L2 norm",
    "jaccard_prev": "top-k overlap with the previous snapshot (Jaccard)",
    "top1_cos": "top-1 cosine",
    "l2_to_init": "L2 distance to the initial vector",
}


@takes("drift_table(run, model)")
def drift_curves(drift: pd.DataFrame, metric: str = "cos_to_init", *, highlight: int | None = None) -> go.Figure:
    """One line per position (and the mean, bold) of a drift metric over steps, one colour per run."""
    if metric not in DRIFT_METRICS:
        raise ValueError(f"drift metric '{metric}' is not known; expected one of {', '.join(DRIFT_METRICS)}")
    fig = go.Figure()
    runs = sorted(drift["run"].unique()) if "run" in drift else ["run"]
    colors = palette(runs)
    for run in runs:
        part = drift[drift["run"] == run] if "run" in drift else drift
        for position, line in part.groupby("position"):
            emphasis = highlight is not None and position == highlight
            fig.add_trace(
                go.Scatter(
                    x=line["step"],
                    y=line[metric],
                    mode="lines",
                    line={"color": colors[run], "width": 3 if emphasis else 0.7},
                    opacity=1.0 if emphasis else 0.3,
                    showlegend=False,
                    hovertemplate=f"{run} position {position}<br>step %{{x}}: %{{y:.3f}}<extra></extra>",
                )
            )
        mean = part.groupby("step")[metric].mean()
        fig.add_trace(
            go.Scatter(
                x=mean.index,
                y=mean.to_numpy(),
                mode="lines",
                name=f"{run} (mean)",
                line={"color": colors[run], "width": 3},
            )
        )
    fig.update_layout(title=DRIFT_METRICS[metric], xaxis_title="step", yaxis_title=metric, height=380, margin={"t": 40})
    return fig


@takes("{run name: run.metrics()} (each run's metrics table)", per_run=True)
def loss_curves(metrics: dict[str, pd.DataFrame], *, title: str = "Training loss") -> go.Figure:
    """Loss over steps per run (``{run: run.metrics()}``), smoothed over 10 steps."""
    fig = go.Figure()
    colors = palette(sorted(metrics))
    for run, frame in sorted(metrics.items()):
        if frame.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=frame["step"],
                y=frame["loss"].rolling(10, min_periods=1).mean(),
                name=run,
                line={"color": colors[run]},
            )
        )
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", height=320, margin={"t": 40})
    return fig


@takes("a table of step, mean, low and high cosine to the initial vector")
def travel_curve(
    travel: pd.DataFrame, *, title: str = "Cosine to the initial vector", y_range: tuple[float, float] | None = None
) -> go.Figure:
    """Mean cosine to the initial vector over steps, with the spread across seeds as a band."""
    fig = go.Figure()
    if not travel.empty:
        fig.add_trace(go.Scatter(x=travel["step"], y=travel["high"], mode="lines", line={"width": 0}, showlegend=False))
        fig.add_trace(
            go.Scatter(
                x=travel["step"],
                y=travel["low"],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(102, 194, 165, 0.3)",
                name="seeds: min to max",
            )
        )
        fig.add_trace(
            go.Scatter(x=travel["step"], y=travel["mean"], mode="lines", line={"color": PALETTE[0]}, name="mean")
        )
    fig.update_layout(
        title=title,
        xaxis_title="step",
        yaxis={"title": "cos to init", **({"range": list(y_range)} if y_range is not None else {})},
        height=260,
        margin={"t": 40, "l": 10, "r": 10, "b": 10},
        showlegend=False,
    )
    return fig


PREFIX_DRIFT_METRICS = {
    "mean_cos_to_first": "cosine to the first checkpoint",
    "mean_top1_cosine": "top-1 cosine to real tokens",
    "on_manifold_share": "share on the token manifold",
}
"""Each measure of ``PrefixDrift.to_dataframe()`` drawn, in words (each a mean over the prefix's positions)."""


@takes("a prefix's drift (PrefixDrift.to_dataframe())")
def prefix_drift_curves(drift: pd.DataFrame, *, title: str = "A prefix's drift over training") -> go.Figure:
    """A prefix's drift at one layer (``PrefixDrift.to_dataframe()``): one line per measure and part (key solid,
    value dashed) over steps."""
    fig = go.Figure()
    colors = palette(list(PREFIX_DRIFT_METRICS))
    for metric, name in PREFIX_DRIFT_METRICS.items():
        for part, line in drift.groupby("part"):
            fig.add_trace(
                go.Scatter(
                    x=line["step"],
                    y=line[metric],
                    mode="lines+markers",
                    name=f"{name}, {part}s",
                    line={"color": colors[metric], "dash": "solid" if part == "key" else "dash"},
                    customdata=line["top1_tokens"],
                    hovertemplate=f"{part}s, step %{{x}}: %{{y:.3f}}<br>top-1: %{{customdata}}<extra></extra>",
                )
            )
    fig.update_layout(title=title, xaxis_title="step", height=380, margin={"t": 40}, legend={"font": {"size": 10}})
    return fig
