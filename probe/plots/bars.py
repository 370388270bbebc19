"""Bar charts of accuracies and per-position importance."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from probe.core.names import DISCRETISED, SOFT, ZERO_SHOT, label
from probe.plots.inputs import takes
from probe.plots.style import PALETTE


@takes("a table of runs' accuracies (columns run, soft_accuracy, discretised_accuracy, zero_shot_accuracy)")
def init_comparison(table: pd.DataFrame, *, title: str = "Accuracy by initialisation") -> go.Figure:
    """Grouped bars of soft, discretised and zero-shot accuracy per run (columns run, accuracy, ...)."""
    fig = go.Figure()
    for column in (SOFT, DISCRETISED, ZERO_SHOT):
        name = label(column)
        if column in table:
            fig.add_trace(
                go.Bar(
                    x=table["run"],
                    y=table[column],
                    name=name,
                    hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>",
                )
            )
    fig.update_layout(
        title=title, barmode="group", yaxis={"range": [0, 1], "title": "test accuracy"}, height=360, margin={"t": 40}
    )
    return fig


@takes("an importance reading's table (probe.importance(prompt, readout).to_dataframe())")
def importance_bars(table: pd.DataFrame, *, highlight: int | None = None) -> go.Figure:
    """Per position, the accuracy drop with it removed, read as its nearest token, and as the mean vocab row."""
    fig = go.Figure()
    for column, color in (
        ("removed drop", PALETTE[0]),
        ("nearest-token drop (faithfulness)", PALETTE[1]),
        ("mean-vocab drop", PALETTE[2]),
    ):
        fig.add_trace(go.Bar(x=table["position"].astype(str), y=table[column], name=column, marker_color=color))
    if highlight is not None:
        fig.add_vrect(x0=highlight - 0.5, x1=highlight + 0.5, fillcolor="gold", opacity=0.25, line_width=0)
    fig.update_layout(
        title="Accuracy drop per position (soft minus variant)",
        xaxis_title="position",
        yaxis_title="accuracy drop",
        barmode="group",
        height=380,
        margin={"t": 40},
        legend={"orientation": "h"},
    )
    return fig


@takes("a table of accuracies per init, mean and standard deviation across seeds")
def accuracy_bars(spread: pd.DataFrame, *, title: str = "Test accuracy") -> go.Figure:
    """Soft / discretised / zero-shot accuracy with the standard deviation across seeds, on a 0-1 axis."""
    fig = go.Figure(
        go.Bar(
            x=[label(m) for m in spread["measure"]],
            y=spread["mean"],
            error_y={"type": "data", "array": spread["sd"]},
            marker_color=PALETTE[: len(spread)],
            text=[f"{v:.2f}" for v in spread["mean"]],
            textposition="inside",
        )
    )
    fig.update_layout(title=title, yaxis={"range": [0, 1]}, height=240, margin={"t": 40, "l": 10, "r": 10, "b": 10})
    return fig
