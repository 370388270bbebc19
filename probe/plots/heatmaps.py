"""Positions x (steps, ranks, layers) heatmaps with each cell's token written in it."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from probe.plots.inputs import takes


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
    zrange: tuple[float, float] | None = None,
    max_chars: int = 12,
) -> go.Figure:
    """Positions (rows) x ``columns`` heatmap coloured by ``values`` (over ``zrange`` when given, so that figures
    of several runs share one scale) with each cell's token written in it, cut to ``max_chars`` (the hover has it
    whole)."""
    z = table.pivot(index="position", columns=columns, values=values)
    text = table.pivot(index="position", columns=columns, values="token")
    whole = text.to_numpy()
    shown = [[_cut(t, max_chars) for t in row] for row in whole]
    scale = {} if zrange is None else {"zmin": zrange[0], "zmax": zrange[1]}
    fig = go.Figure(
        go.Heatmap(
            z=z.to_numpy(),
            x=[x_label(c) for c in z.columns],
            y=[str(p) for p in z.index],
            text=shown,
            customdata=whole,
            texttemplate="%{text}",
            textfont={"size": font_size},
            colorscale=colorscale,
            colorbar={"title": colorbar},
            hovertemplate=hover.replace("%{text}", "%{customdata}"),
            **scale,
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


def _cut(token: object, max_chars: int) -> str:
    text = "" if token is None or (isinstance(token, float) and token != token) else str(token)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


RIVER_SCALE = (0.0, 1.0)
"""The top-1 cosine's colour scale in every river: one scale for every run, so colours compare across them."""


@takes("drift_table(run, model)")
def token_river(
    drift: pd.DataFrame,
    *,
    title: str = "Top-1 token of each position over training",
    zrange: tuple[float, float] | None = RIVER_SCALE,
) -> go.Figure:
    """Heatmap of positions x steps: colour is the top-1 cosine (on ``zrange``, default 0 to 1 for every run;
    ``None``: this run's own range), text the top-1 token."""
    return _token_heatmap(
        drift.rename(columns={"top1_token": "token"}),
        "step",
        "top1_cos",
        x_label=str,
        colorscale="Viridis",
        colorbar="top-1 cos" if zrange is None else f"top-1 cos<br>({zrange[0]:g} to {zrange[1]:g},<br>every run)",
        hover="position %{y}, step %{x}<br>%{text} (%{z:.2f})<extra></extra>",
        title=title,
        xaxis_title="step",
        font_size=9,
        zrange=zrange,
    )


@takes("a report's table (probe.nearest_tokens(prompt, model).to_dataframe())")
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


@takes("a layer lens's table (columns position, layer, token, cosine)")
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
