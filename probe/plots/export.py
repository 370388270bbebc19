"""Saving figures: Plotly's toolbar download settings, and interactive HTML pages."""

from __future__ import annotations

import plotly.graph_objects as go

DOWNLOAD_FORMATS = ("png", "svg", "jpeg", "webp")
"""What the camera button of Plotly's own toolbar can save, drawn in the browser."""


def download_config(fmt: str, name: str) -> dict[str, object]:
    """Plotly's toolbar config: its camera button saves the figure as ``fmt`` (one of :data:`DOWNLOAD_FORMATS`)
    under ``name``, at twice the screen resolution for raster formats."""
    if fmt not in DOWNLOAD_FORMATS:
        expected = ", ".join(DOWNLOAD_FORMATS)
        raise ValueError(f"figure format {fmt!r} is not one Plotly saves; expected one of {expected}")
    return {"toImageButtonOptions": {"format": fmt, "filename": name, "scale": 2}, "displaylogo": False}


def to_html(fig: go.Figure, *, inline: bool = True) -> str:
    """The figure as an interactive HTML page: self-contained (plotly.js inlined, it opens offline), or, with
    ``inline=False``, loading plotly.js from its CDN (a small file)."""
    return fig.to_html(include_plotlyjs=True if inline else "cdn", full_html=True)
