"""The vocabulary map with prompt trajectories, and where to put labels on it (SVG text, readable from the page)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from probe.plots.style import CLOUD_COLOR, palette


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
        paths: from :func:`probe.dashboard.views.trajectories` (run, init, step, position, x, y, neighbours, top1_cos,
            on_manifold).
        step: mark each position at its last snapshot at or before this step (default: the last).
        highlight: a position to draw thicker in every run.
        color_by: "run" or "init".
        landmarks: words to write on the map (token, x, y, is_label), from :func:`probe.dashboard.views.landmarks`;
            class labels are drawn in bold red.
        label_positions: write each position's top-1 token next to it (placed to avoid overlaps).
    """
    fig = vocab_cloud(tokens, title=title)
    if landmarks is not None and not landmarks.empty:
        _add_landmarks(fig, landmarks)
    if paths.empty:
        return fig
    colors = palette(sorted(paths[color_by].astype(str).unique()))
    _add_tracks(fig, paths, colors, color_by, highlight)
    current = paths if step is None else paths[paths["step"] <= step]
    current = current.sort_values("step").groupby(["run", "position"], as_index=False).tail(1)
    _add_positions(fig, current, colors, color_by, highlight)
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


def _add_landmarks(fig: go.Figure, landmarks: pd.DataFrame) -> None:
    """Landmark words in grey and class labels in bold red, as SVG text."""
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


def _add_tracks(
    fig: go.Figure, paths: pd.DataFrame, colors: dict[str, str], color_by: str, highlight: int | None
) -> None:
    """Each position's path over the snapshots, the highlighted one thicker."""
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


def _add_positions(
    fig: go.Figure, current: pd.DataFrame, colors: dict[str, str], color_by: str, highlight: int | None
) -> None:
    """Each position where it is now: a circle on the token manifold, a cross off it."""
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


def small_map(tokens: pd.DataFrame, paths: pd.DataFrame, *, step: int | None, highlight: int | None) -> go.Figure:
    """:func:`prompt_map` without words, legend or title, 320 px high: one column's map on the side-by-side page."""
    fig = prompt_map(tokens, paths, step=step, highlight=highlight, label_positions=False)
    fig.update_layout(height=320, showlegend=False, title=None, margin={"t": 10, "l": 0, "r": 0, "b": 0})
    return fig
