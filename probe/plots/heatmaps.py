"""Positions x (steps, ranks, layers) heatmaps with each cell's token written in it."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def _token_heatmap(
    table: pd.DataFrame,
    columns: str,
    values: str,
    *,
    x_label,
    colorscale: str,
    colorbar: str,
    hover: str,
    title: str,
    xaxis_title: str,
    font_size: int,
) -> go.Figure:
    """Positions (rows) x ``columns`` heatmap coloured by ``values`` with each cell's token written in it."""
    z = table.pivot(index="position", columns=columns, values=values)
    text = table.pivot(index="position", columns=columns, values="token")
    fig = go.Figure(
        go.Heatmap(
            z=z.to_numpy(),
            x=[x_label(c) for c in z.columns],
            y=[str(p) for p in z.index],
            text=text.to_numpy(),
            texttemplate="%{text}",
            textfont={"size": font_size},
            colorscale=colorscale,
            colorbar={"title": colorbar},
            hovertemplate=hover,
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title=xaxis_title,
        yaxis_title="position",
        yaxis={"autorange": "reversed"},
        height=max(300, 22 * len(z.index) + 120),
        margin={"t": 40},
    )
    return fig


def token_river(drift: pd.DataFrame, *, title: str = "Top-1 token of each position over training") -> go.Figure:
    """Heatmap of positions x steps: colour is the top-1 cosine, text the top-1 token."""
    return _token_heatmap(
        drift.rename(columns={"top1_token": "token"}),
        "step",
        "top1_cos",
        x_label=str,
        colorscale="Viridis",
        colorbar="top-1 cos",
        hover="position %{y}, step %{x}<br>%{text} (%{z:.2f})<extra></extra>",
        title=title,
        xaxis_title="step",
        font_size=9,
    )


def neighbour_heatmap(table: pd.DataFrame, *, title: str = "Cosine of each position's neighbours") -> go.Figure:
    """Positions x rank heatmap of cosines with tokens as text (from ``NearestTokenReport.to_dataframe()``)."""
    return _token_heatmap(
        table,
        "rank",
        "cosine",
        x_label=lambda r: f"#{r}",
        colorscale="Blues",
        colorbar="cosine",
        hover="position %{y}, rank %{x}<br>%{text}: %{z:.3f}<extra></extra>",
        title=title,
        xaxis_title="rank",
        font_size=10,
    )


def lens_heatmap(lens: pd.DataFrame, *, title: str = "Layer lens: top-1 contextual token") -> go.Figure:
    """Positions x layers, coloured by cosine, each cell's top-1 token written in it."""
    return _token_heatmap(
        lens,
        "layer",
        "cosine",
        x_label=lambda c: f"L{c}",
        colorscale="Viridis",
        colorbar="cosine",
        hover="position %{y}, %{x}: %{text} (cos %{z:.2f})<extra></extra>",
        title=title,
        xaxis_title="layer (0 = embeddings output)",
        font_size=10,
    )
