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


COLUMN_HELP = {
    "run": "the run's folder name",
    "init": "how the prompt started: class-label, sampled-vocab (5,000 most frequent tokens) or random-uniform",
    "soft_accuracy": "accuracy of the trained soft prompt on the test rows",
    "discretised_accuracy": "accuracy when every position is replaced by its nearest real token",
    "zero_shot_accuracy": "accuracy of the frozen model with no prompt",
    "gain_retained": "(discretised - zero-shot) / (soft - zero-shot): the share of the prompt's gain its nearest "
    "tokens keep; negative: they do worse than no prompt; blank: the soft prompt is not above zero-shot",
    "distance_travelled": "mean over positions of 1 - cosine(final, init)",
    "cos_final_to_init": "mean over positions of the cosine between the final and the initial vector",
    "init_token_kept_top1": "positions whose top-1 token is still the token they started as (of the positions that "
    "started as a token); unknown: the init was not a token",
    "label_in_topk": "share of positions with a class label among their top-k tokens",
    "on_manifold": "share of positions (or, for one position: whether it is) as close to its nearest token as real "
    "tokens are to theirs",
    "duplicate_top1": "share of positions whose top-1 token is another position's top-1 too",
    "mean_converged_at": "mean step after which a position's top-1 token no longer changed",
    "mean_coherence": "mean cosine between a position's top-k tokens (how tight its neighbourhood is)",
    "position": "the prompt position (0 is the first virtual token)",
    "neighbours": "the k nearest real tokens by cosine, with their cosines",
    "top1": "the nearest real token",
    "top1_cos": "cosine to the nearest real token",
    "margin": "cosine of the top-1 token minus that of the top-2",
    "norm_x_vocab": "the position's norm as a multiple of the vocabulary's mean norm",
    "manifold_pct": "percentile of the position's top-1 cosine among real tokens' own top-1 cosines",
    "labels": "class labels among the top-k, with their ranks (label@rank)",
    "repeats_at": "other positions with the same top-1 token",
    "init_tokens": "the top-k tokens at the start",
    "final_tokens": "the top-k tokens at the end",
    "cos_to_init": "cosine between the position's final and initial vector",
    "coherence": "mean cosine between the position's final top-k tokens",
}
"""What each table column means, shown when the pointer rests on its header (every page's tables)."""


def data_table(frame: Any, *, pin: str | None = None, **kwargs: Any) -> Any:
    """``st.dataframe`` as every page shows one: as wide as the page (scrolling sideways when it must, with the
    ``pin`` column, default the first, kept in view) and help on every column :data:`COLUMN_HELP` knows."""
    data = getattr(frame, "data", frame)  # a Styler's frame
    columns = [str(c) for c in data.columns]
    pinned = pin if pin is not None else (columns[0] if columns else None)
    config = {
        c: st.column_config.Column(help=COLUMN_HELP.get(c), pinned=c == pinned or None)
        for c in columns
        if c in COLUMN_HELP or c == pinned
    }
    options: dict[str, Any] = {"hide_index": True, "width": "stretch"} | kwargs
    return st.dataframe(frame, column_config=config, **options)


def wait_for(job: Any, what: str) -> Any:
    """The result of a reading running beside the page (:class:`probe.dashboard.state.Job`), or None: until it
    lands, a line saying what is being read (the page redraws itself when it does); its error, in one line."""
    if job.error:
        st.error(f"{what}: {job.error}")
        return None
    if not job.done:
        st.info(f"{what}: being read beside the page (the first time builds the reference); it appears when done.")
        _rerun_when_done(job)
        return None
    return job.result


@st.fragment(run_every=1.0)
def _rerun_when_done(job: Any) -> None:
    if job.done:
        st.rerun()


def highlighted(table: Any, focus: int | None) -> Any:
    """A position table (``views.position_table``) styled as the pages show it: the ``focus`` position's row
    highlighted, the measures rounded."""
    return table.style.apply(
        lambda row: ["background-color: #fff3b0" if row["position"] == focus else "" for _ in row], axis=1
    ).format({"top1_cos": "{:.3f}", "margin": "{:.3f}", "norm_x_vocab": "{:.2f}", "manifold_pct": "{:.0f}"})


def one_line(error: BaseException) -> str:
    """An error as the CLI says it: one line."""
    return " ".join(str(error).split()) or type(error).__name__


def show_error(error: BaseException) -> None:
    """Show ``error`` on the page as one line."""
    st.error(one_line(error))
