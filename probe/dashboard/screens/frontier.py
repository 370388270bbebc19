"""Frontier: a ``probe frontier`` report, soft accuracy against how faithfully each run's nearest tokens stand in
for it. Clicking a point (or choosing a run under the figure) shows that run on every page."""

import streamlit as st

from probe.dashboard import settings
from probe.dashboard.sidebar import current_view, select_runs
from probe.dashboard.widgets import chart, data_table
from probe.experiments.frontier.figure import frontier_figure
from probe.experiments.frontier.table import frontier_view

view = current_view()
folder = settings.frontier_dir()
if settings.folders_editable():
    folder = str(st.text_input("Frontier folder", value=folder))
else:
    st.caption(f"Frontier folder: `{folder}`")
frontier = frontier_view(folder, view.runs)
if frontier is None:
    st.info(
        f"No frontier report in `{folder}` yet. Measure one with `probe frontier --quick --out {folder}` (it prints "
        f"its time estimate first), then open its runs with `probe dashboard {folder}/runs`."
    )
else:
    st.markdown(frontier.report.headline())

    def picked(shown=frontier) -> None:  # the view drawn, bound now
        chosen = shown.picked(st.session_state["frontier-figure"]["selection"]["points"])
        if chosen:
            select_runs(chosen)

    figure = frontier_figure(frontier.report)
    chart(figure, view.figure_format, key="frontier-figure", on_select=picked, selection_mode="points")
    data_table(frontier.table())
    openable = [n for n in frontier.names if n]
    if openable:
        st.selectbox(
            "Show a run on every page",
            openable,
            index=None,
            key="frontier-open",
            on_change=lambda: select_runs([st.session_state["frontier-open"]]),
            placeholder="click a point, or choose a run",
        )
    else:
        st.caption(f"Its runs are not in the runs folder; open them with `probe dashboard {folder}/runs`.")
    aim = frontier.report.aim
    if aim:
        st.caption(
            f"Aim: nearest tokens that keep {aim['gain_retained']:.0%} of the gain and agree on "
            f"{aim['agreement']:.0%} of the test rows, soft within {aim['soft_within'] * 100:.1f} points of the "
            f"unconstrained runs; {len(aim['runs_meeting_it'])} of {len(frontier.report.runs)} runs meet it."
        )
