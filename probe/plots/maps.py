"""The vocabulary map with prompt trajectories, and where to put labels on it (SVG text, readable from the page)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from probe.plots.inputs import takes
from probe.plots.style import CLOUD_COLOR, palette


@takes("the map's token table (columns token, x, y)")
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


@takes("the map's token table (columns token, x, y), then its paths")
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
    words = landmarks if landmarks is not None else pd.DataFrame(columns=["token", "x", "y", "is_label"])
    current = paths.iloc[0:0]
    if not paths.empty:
        colors = palette(sorted(paths[color_by].astype(str).unique()))
        _add_tracks(fig, paths, colors, color_by, highlight)
        current = paths if step is None else paths[paths["step"] <= step]
        current = current.sort_values("step").groupby(["run", "position"], as_index=False).tail(1)
        _add_positions(fig, current, colors, color_by, highlight)
    if not label_positions or current.empty:
        current = current.iloc[0:0] if "x" in current else pd.DataFrame(columns=["x", "y", "neighbours", color_by])
    top1 = current["neighbours"].str.split(", ").str[0].fillna("").astype(str)
    labels = words[words["is_label"].astype(bool)]
    others = words[~words["is_label"].astype(bool)]
    # one placement for every word on the map: class labels, then the top-1 tokens (both always written), then
    # landmark words where they fit (a landmark that would cover another word is left to the hover)
    xs = np.concatenate([labels["x"], current["x"], others["x"]]).astype(float)
    ys = np.concatenate([labels["y"], current["y"], others["y"]]).astype(float)
    texts = [*map(str, labels["token"]), *top1, *map(str, others["token"])]
    required = len(labels) + len(top1)
    scales = [1.3] * len(labels) + [1.0] * len(top1) + [0.95] * len(others)  # 13 px bold, 11 px, 10 px
    view = _view(tokens, xs[:required], ys[:required])  # landmarks may fall outside; labels and positions never
    # words are sized for the view they are drawn in (a wider view, below, only makes them smaller on the map)
    span = (view[1] - view[0], view[3] - view[2]) if view is not None else _span(tokens, xs, ys)
    spots = label_spots(xs, ys, texts, required=required, span=span, scales=scales)
    n = len(labels)
    _add_words(fig, others, spots[required:], size=10, color="#7f8c8d", name="landmark words")
    _add_words(fig, labels, spots[:n], size=13, color="#c0392b", name="class labels", bold=True)
    if len(top1):
        tops = pd.DataFrame({"token": top1.to_numpy(), "x": current["x"].to_numpy(), "y": current["y"].to_numpy()})
        shades = [colors[str(g)] for g in current[color_by]]
        _add_words(fig, tops, spots[n:required], size=11, color=shades, name="top-1 tokens")
    if view is not None:
        _frame(
            fig,
            tokens,
            view,
            _word_boxes(xs[:required], ys[:required], texts[:required], spots[:required], span, scales),
        )
    return fig


OUTLYING = 0.005
"""Share of the vocabulary cloud at each end of each axis that the view may leave out (outlying streaks would
otherwise squeeze the rest into a corner)."""


def _view(tokens: pd.DataFrame, x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x0, x1, y0, y1): the cloud less its outliers (:data:`OUTLYING`) and every word's and position's point,
    padded by 4%; None for a cloud too small to have outliers (the view is then the plot's own)."""
    cx, cy = tokens["x"].to_numpy(dtype=float), tokens["y"].to_numpy(dtype=float)
    if len(cx) < 100:
        return None
    ranges = []
    for cloud, words in ((cx, x), (cy, y)):
        low, high = np.quantile(cloud, [OUTLYING, 1 - OUTLYING])
        if len(words):
            low, high = min(low, float(words.min())), max(high, float(words.max()))
        pad = 0.04 * (high - low)
        ranges += [low - pad, high + pad]
    return ranges[0], ranges[1], ranges[2], ranges[3]


def _frame(fig: go.Figure, tokens: pd.DataFrame, view: tuple[float, float, float, float], boxes: np.ndarray) -> None:
    """Axis ranges: ``view`` (:func:`_view`) widened to every written word's box (left, bottom, right, top: its
    text, not only its point), with a note saying how many tokens lie outside (double-click the map to see all)."""
    x0, x1, y0, y1 = view
    if len(boxes):
        x0, x1 = min(x0, float(boxes[:, 0].min())), max(x1, float(boxes[:, 2].max()))
        y0, y1 = min(y0, float(boxes[:, 1].min())), max(y1, float(boxes[:, 3].max()))
    fig.update_xaxes(range=[x0, x1])
    fig.update_yaxes(range=[y0, y1])
    cx, cy = tokens["x"].to_numpy(dtype=float), tokens["y"].to_numpy(dtype=float)
    outside = int(np.sum((cx < x0) | (cx > x1) | (cy < y0) | (cy > y1)))
    if outside == 0:
        return
    fig.add_annotation(
        text=f"{outside:,} outlying tokens lie outside this view (double-click the map to see them all)",
        xref="paper",
        yref="paper",
        x=0,
        y=0,
        xanchor="left",
        yanchor="bottom",
        showarrow=False,
        font={"size": 10, "color": "#7f8c8d"},
    )


def _span(tokens: pd.DataFrame, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The width and height the map spans (its cloud and its words): label sizes are shares of these."""
    all_x = np.concatenate([tokens["x"].to_numpy(dtype=float), x])
    all_y = np.concatenate([tokens["y"].to_numpy(dtype=float), y])
    return max(float(np.ptp(all_x)), 1e-9), max(float(np.ptp(all_y)), 1e-9)


def _add_words(
    fig: go.Figure,
    words: pd.DataFrame,
    spots: list[Spot | None],
    *,
    size: int,
    color: str | list[str],
    name: str,
    bold: bool = False,
) -> None:
    """The words (token, x, y) that were given a spot, as SVG text; a word moved away from its point is joined to
    it by a thin leader line. The others are not written (the hover still names every point)."""
    kept = [i for i, spot in enumerate(spots) if spot is not None]
    if not kept:
        return
    at = [spots[i] for i in kept]
    x = words["x"].to_numpy(dtype=float)[kept]
    y = words["y"].to_numpy(dtype=float)[kept]
    tx = x + np.array([spot[1] for spot in at if spot is not None])
    ty = y + np.array([spot[2] for spot in at if spot is not None])
    moved = [j for j in range(len(kept)) if tx[j] != x[j] or ty[j] != y[j]]
    if moved:
        lx = [v for j in moved for v in (x[j], tx[j], None)]
        ly = [v for j in moved for v in (y[j], ty[j], None)]
        fig.add_trace(
            go.Scatter(
                x=lx, y=ly, mode="lines", line={"width": 0.6, "color": "#95a5a6"}, hoverinfo="skip", showlegend=False
            )
        )
    tokens = [str(t) for t in words["token"].to_numpy()[kept]]
    colors = [color[i] for i in kept] if isinstance(color, list) else color
    fig.add_trace(
        go.Scatter(
            x=tx,
            y=ty,
            mode="text",
            text=[f"<b>{t}</b>" for t in tokens] if bold else tokens,
            textposition=[spot[0] for spot in at if spot is not None],
            textfont={"size": size, "color": colors},
            hoverinfo="skip",
            name=name,
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


CHAR, LINE = 0.010, 0.045
"""A character's width and a line's height of an 11 px word as shares of the view's width and height (a 620 px map
about 800 px wide), with a margin: words placed apart by these never touch on the page."""
LABEL_SPOTS = ("top right", "bottom right", "top left", "bottom left", "top center", "bottom center")
RINGS = 4
"""How far a required word may move from its point to find a free place: up to this many line heights (a leader
line then joins it to its point)."""

Spot = tuple[str, float, float]
"""Where a word is written: its text position beside the anchor, and the anchor's shift from the point (map units)."""


def label_spots(
    x: np.ndarray,
    y: np.ndarray,
    texts: list[str],
    *,
    char: float = CHAR,
    line: float = LINE,
    required: int | None = None,
    span: tuple[float, float] | None = None,
    scales: list[float] | None = None,
) -> list[Spot | None]:
    """Where to write each point's text so that no two words overlap (greedy, in map units, in the given order).

    Each word tries the six sides of its point, then the same sides moved 1 to :data:`RINGS` line heights away.
    The first ``required`` texts (default: all) are always written: at the first free place, else where they
    overlap least. A later text is written only at a free place (``None``: not written), and a text already written
    where this one would overlap it is not written twice. ``char`` and ``line`` are a character's width and a line's
    height as shares of ``span`` (the map's width and height; default: the points' own), for an 11 px font; a
    word's entry in ``scales`` sizes it for its own font (13 px bold: about 1.3).
    """
    if len(x) == 0:
        return []
    required = len(texts) if required is None else required
    span = span or (max(float(np.ptp(x)), 1e-9), max(float(np.ptp(y)), 1e-9))
    placed: list[tuple[tuple[float, float, float, float], str]] = []  # (box, text)
    spots: list[Spot | None] = []
    for i, (xi, yi, text) in enumerate(zip(x, y, texts, strict=True)):
        w, h = _text_size(text, span, scales[i] if scales is not None else 1.0, char, line)
        rings = range(RINGS + 1) if i < required else range(1)
        best: tuple[float, Spot, tuple[float, float, float, float]] | None = None
        for ring in rings:
            for side in LABEL_SPOTS:
                dx = ring * h * (-1 if "left" in side else 0 if "center" in side else 1)
                dy = ring * h * (-1 if "bottom" in side else 1)
                box = _box(float(xi) + dx, float(yi) + dy, w, h, side)
                clash = sum(_overlap(box, b) for b, _ in placed)
                if best is None or clash < best[0]:
                    best = (clash, (side, dx, dy), box)
                if clash == 0:
                    break
            if best is not None and best[0] == 0:
                break
        assert best is not None
        clash, spot, box = best
        twin = any(t == text and _overlap(_box(float(xi), float(yi), w, h, spot[0]), b) > 0 for b, t in placed)
        if twin or (i >= required and clash > 0):
            spots.append(None)
            continue
        placed.append((box, text))
        spots.append(spot)
    return spots


def _text_size(text: str, span: tuple[float, float], scale: float, char: float, line: float) -> tuple[float, float]:
    """A word's width and height in map units (``char``/``line``: shares of ``span`` for an 11 px font)."""
    return len(text) * char * span[0] * scale, line * span[1] * scale


def _word_boxes(
    x: np.ndarray,
    y: np.ndarray,
    texts: list[str],
    spots: list[Spot | None],
    span: tuple[float, float],
    scales: list[float] | None = None,
    *,
    char: float = CHAR,
    line: float = LINE,
) -> np.ndarray:
    """The box (left, bottom, right, top; map units) each written word takes at its spot from :func:`label_spots`
    ([n, 4]; words not written are left out)."""
    boxes = []
    for i, (xi, yi, text, spot) in enumerate(zip(x, y, texts, spots, strict=True)):
        if spot is None:
            continue
        w, h = _text_size(text, span, scales[i] if scales is not None else 1.0, char, line)
        boxes.append(_box(float(xi) + spot[1], float(yi) + spot[2], w, h, spot[0]))
    return np.array(boxes, dtype=float).reshape(-1, 4)


def _box(x: float, y: float, w: float, h: float, spot: str) -> tuple[float, float, float, float]:
    """The box a word written at ``spot`` of (x, y) takes, with a sixth of a line to spare above and below: the
    browser's box of a word above a point reaches a little below it (descenders), and one below a little above."""
    left = x - (w if "left" in spot else w / 2 if "center" in spot else 0)
    bottom = y - h if "bottom" in spot else y
    return left, bottom - h / 6, left + w, bottom + h * 7 / 6


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


@takes("the map's token table (columns token, x, y), then its paths")
def small_map(tokens: pd.DataFrame, paths: pd.DataFrame, *, step: int | None, highlight: int | None) -> go.Figure:
    """:func:`prompt_map` without words, legend or title, 320 px high: one column's map on the side-by-side page."""
    fig = prompt_map(tokens, paths, step=step, highlight=highlight, label_positions=False)
    fig.update_layout(height=320, showlegend=False, title=None, margin={"t": 10, "l": 0, "r": 0, "b": 0})
    return fig
