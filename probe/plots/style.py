"""Colours shared by every figure."""

from __future__ import annotations

import plotly.express as px

PALETTE = px.colors.qualitative.Set2
CLOUD_COLOR = "rgba(150, 150, 150, 0.25)"


def palette(keys: list[str]) -> dict[str, str]:
    """One palette colour per key, in order."""
    return {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(keys)}
