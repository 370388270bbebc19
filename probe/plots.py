"""Plotly figure builders: tidy data in, ``go.Figure`` out. No Streamlit here, nothing is shown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

PALETTE = px.colors.qualitative.Set2
CLOUD_COLOR = "rgba(150, 150, 150, 0.25)"


def _colors(keys: list[str]) -> dict[str, str]:
    return {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(keys)}


def vocab_cloud(tokens: pd.DataFrame, *, title: str = "Vocabulary map") -> go.Figure:
    """The vocabulary as a WebGL point cloud with the token on hover (columns token, x, y)."""
    fig = go.Figure(
        go.Scattergl(
            x=tokens["x"],
            y=tokens["y"],
            mode="markers",
            marker={"size": 3, "color": CLOUD_COLOR},
            text=tokens["token"],
            hovertemplate="%{text}<extra>vocabulary</extra>",
            name="vocabulary",
        )
    )
    fig.update_layout(
        title=title,
        xaxis={"visible": False},
        yaxis={"visible": False},
        height=620,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h"},
    )
    return fig


def prompt_map(
    tokens: pd.DataFrame,
    paths: pd.DataFrame,
    *,
    step: int | None = None,
    highlight: int | None = None,
    color_by: str = "run",
    title: str = "Prompt positions in the vocabulary map",
    landmarks: pd.DataFrame | None = None,
    label_positions: bool = True,
) -> go.Figure:
    """Vocabulary cloud plus each position's trajectory over the snapshots, with words written on it.

    Labels are SVG text (not WebGL), so they stay legible when zooming and can be read from the page.

    Args:
        tokens: vocabulary cloud (token, x, y).
        paths: from :func:`probe.views.trajectories` (run, init, step, position, x, y, neighbours, top1_cos,
            on_manifold).
        step: mark each position at its last snapshot at or before this step (default: the last).
        highlight: a position to draw thicker in every run.
        color_by: "run" or "init".
        landmarks: words to write on the map (token, x, y, is_label), from :func:`probe.views.landmarks`;
            class labels are drawn in bold red.
        label_positions: write each position's top-1 token next to it (placed to avoid overlaps).
    """
    fig = vocab_cloud(tokens, title=title)
    if landmarks is not None and not landmarks.empty:
        for is_label, words in landmarks.groupby("is_label"):
            fig.add_trace(
                go.Scatter(
                    x=words["x"],
                    y=words["y"],
                    mode="text",
                    text=[f"<b>{w}</b>" for w in words["token"]] if is_label else words["token"],
                    textfont={"size": 13 if is_label else 10, "color": "#c0392b" if is_label else "#7f8c8d"},
                    hoverinfo="skip",
                    name="class labels" if is_label else "landmark words",
                )
            )
    if paths.empty:
        return fig
    colors = _colors(sorted(paths[color_by].astype(str).unique()))
    for (group, position), track in paths.groupby([color_by, "position"], sort=True):
        track = track.sort_values("step")
        emphasis = highlight is not None and position == highlight
        fig.add_trace(
            go.Scattergl(
                x=track["x"],
                y=track["y"],
                mode="lines",
                line={"color": colors[str(group)], "width": 3 if emphasis else 1},
                opacity=1.0 if emphasis or highlight is None else 0.35,
                hoverinfo="skip",
                showlegend=False,
                legendgroup=str(group),
            )
        )
    current = paths if step is None else paths[paths["step"] <= step]
    current = current.sort_values("step").groupby(["run", "position"], as_index=False).tail(1)
    for group, points in current.groupby(color_by, sort=True):
        on = points["on_manifold"].astype(bool)
        for flag, symbol, suffix in ((True, "circle", ""), (False, "x", " (off-manifold)")):
            part = points[on == flag]
            if part.empty:
                continue
            sizes = [16 if highlight is not None and p == highlight else 10 for p in part["position"]]
            fig.add_trace(
                go.Scattergl(
                    x=part["x"],
                    y=part["y"],
                    mode="markers",
                    marker={
                        "size": sizes,
                        "color": colors[str(group)],
                        "symbol": symbol,
                        "line": {"width": 1, "color": "black"},
                    },
                    customdata=part[["position", "step", "run"]].to_numpy(),
                    text=part["neighbours"],
                    hovertemplate="run %{customdata[2]}<br>position %{customdata[0]}, step %{customdata[1]}"
                    "<br>%{text}<extra></extra>",
                    name=f"{group}{suffix}",
                    legendgroup=str(group),
                )
            )
    if label_positions and not current.empty:
        top1 = current["neighbours"].str.split(", ").str[0].fillna("")
        spots = label_spots(current["x"].to_numpy(), current["y"].to_numpy(), top1.tolist())
        fig.add_trace(
            go.Scatter(
                x=current["x"],
                y=current["y"],
                mode="text",
                text=top1,
                textposition=spots,
                textfont={"size": 11, "color": [colors[str(g)] for g in current[color_by]]},
                hoverinfo="skip",
                name="top-1 tokens",
            )
        )
    return fig


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


DRIFT_METRICS = {
    "cos_to_init": "cosine to the initial vector",
    "norm": "L2 norm",
    "jaccard_prev": "top-k overlap with the previous snapshot (Jaccard)",
    "top1_cos": "top-1 cosine",
    "l2_to_init": "L2 distance to the initial vector",
}


def drift_curves(drift: pd.DataFrame, metric: str = "cos_to_init", *, highlight: int | None = None) -> go.Figure:
    """One line per position (and the mean, bold) of a drift metric over steps, one colour per run."""
    if metric not in DRIFT_METRICS:
        raise ValueError(f"drift metric '{metric}' is not known; expected one of {', '.join(DRIFT_METRICS)}")
    fig = go.Figure()
    runs = sorted(drift["run"].unique()) if "run" in drift else ["run"]
    colors = _colors(runs)
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


def init_comparison(table: pd.DataFrame, *, title: str = "Accuracy by initialisation") -> go.Figure:
    """Grouped bars of soft, discretised and zero-shot accuracy per run (columns run, accuracy, ...)."""
    fig = go.Figure()
    for column, name in (("accuracy", "soft prompt"), ("discrete_accuracy", "discretised"), ("zero_shot", "zero-shot")):
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


def loss_curves(metrics: dict[str, pd.DataFrame], *, title: str = "Training loss") -> go.Figure:
    """Loss over steps per run (``{run: run.metrics()}``), smoothed over 10 steps."""
    fig = go.Figure()
    colors = _colors(sorted(metrics))
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


LABEL_SPOTS = ("top right", "bottom right", "top left", "bottom left", "top center", "bottom center")


def label_spots(
    x: np.ndarray, y: np.ndarray, texts: list[str], *, char: float = 0.009, line: float = 0.03
) -> list[str]:
    """Where to put each point's text so that labels overlap as little as they can (greedy, in map units).

    ``char`` and ``line`` are a character's width and a line's height as shares of the map's width and height.
    """
    if len(x) == 0:
        return []
    width, height = max(float(np.ptp(x)), 1e-9), max(float(np.ptp(y)), 1e-9)
    placed: list[tuple[float, float, float, float]] = []
    spots = []
    for xi, yi, text in zip(x, y, texts, strict=True):
        w, h = len(text) * char * width, line * height
        best, best_overlap = LABEL_SPOTS[0], float("inf")
        for spot in LABEL_SPOTS:
            left = xi - (w if "left" in spot else w / 2 if "center" in spot else 0)
            bottom = yi - h if "bottom" in spot else yi
            box = (left, bottom, left + w, bottom + h)
            overlap = sum(
                max(0.0, min(box[2], b[2]) - max(box[0], b[0])) * max(0.0, min(box[3], b[3]) - max(box[1], b[1]))
                for b in placed
            )
            if overlap < best_overlap:
                best, best_overlap = spot, overlap
            if overlap == 0:
                break
        left = xi - (w if "left" in best else w / 2 if "center" in best else 0)
        bottom = yi - h if "bottom" in best else yi
        placed.append((left, bottom, left + w, bottom + h))
        spots.append(best)
    return spots


def travel_curve(travel: pd.DataFrame, *, title: str, y_range: tuple[float, float]) -> go.Figure:
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
        yaxis={"title": "cos to init", "range": list(y_range)},
        height=260,
        margin={"t": 40, "l": 10, "r": 10, "b": 10},
        showlegend=False,
    )
    return fig


def accuracy_bars(spread: pd.DataFrame, *, title: str = "Test accuracy") -> go.Figure:
    """Soft / discretised / zero-shot accuracy with the standard deviation across seeds, on a 0-1 axis."""
    fig = go.Figure(
        go.Bar(
            x=spread["measure"],
            y=spread["mean"],
            error_y={"type": "data", "array": spread["sd"]},
            marker_color=PALETTE[: len(spread)],
            text=[f"{v:.2f}" for v in spread["mean"]],
            textposition="inside",
        )
    )
    fig.update_layout(title=title, yaxis={"range": [0, 1]}, height=240, margin={"t": 40, "l": 10, "r": 10, "b": 10})
    return fig


DOWNLOAD_FORMATS = ("png", "svg", "jpeg", "webp")
"""What the camera button of Plotly's own toolbar can save, drawn in the browser."""


def download_config(fmt: str, name: str) -> dict[str, object]:
    """Plotly's toolbar config: its camera button saves the figure as ``fmt`` (one of :data:`DOWNLOAD_FORMATS`)
    under ``name``, at twice the screen resolution for raster formats."""
    if fmt not in DOWNLOAD_FORMATS:
        expected = ", ".join(DOWNLOAD_FORMATS)
        raise ValueError(f"figure format {fmt!r} is not one Plotly saves; expected one of {expected}")
    return {"toImageButtonOptions": {"format": fmt, "filename": name, "scale": 2}, "displaylogo": False}


def to_html(fig: go.Figure) -> str:
    """The figure as a self-contained interactive HTML page (plotly.js inlined: it opens offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)
