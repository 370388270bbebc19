"""Streamlit pieces the pages share: a figure with its downloads, and errors shown as one line."""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from probe.plots.export import download_config, to_html


def chart(fig: Any, figure_format: str, *, key: str | None = None, **kwargs: Any) -> Any:
    """A Plotly figure whose toolbar camera saves ``figure_format``, with a link under it that saves it as an
    interactive HTML page (built only when clicked). Pass ``key`` when a page draws two figures of one title."""
    title = fig.layout.title.text if fig.layout.title and fig.layout.title.text else "figure"
    name = key or re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:60] or "figure"
    event = st.plotly_chart(fig, key=key, config=download_config(figure_format, name), **kwargs)
    st.download_button(
        "HTML",
        data=lambda: to_html(fig),
        file_name=f"{name}.html",
        mime="text/html",
        key=f"html-{name}",
        type="tertiary",
        icon=":material/download:",
        help="this figure as an interactive HTML page",
    )
    return event


def one_line(error: BaseException) -> str:
    """An error as the CLI says it: one line."""
    return " ".join(str(error).split()) or type(error).__name__


def show_error(error: BaseException) -> None:
    """Show ``error`` on the page as one line."""
    st.error(one_line(error))
