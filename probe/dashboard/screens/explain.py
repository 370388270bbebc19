"""Explain: what each selected run's prompt does, from ``probe explain``: importance per position, the
faithfulness of its nearest-token reading, and the hard prompt with its accuracy."""

import streamlit as st

from probe.dashboard import views
from probe.dashboard.jobs import offer_explain
from probe.dashboard.sidebar import current_view
from probe.dashboard.widgets import chart, data_table
from probe.plots.bars import importance_bars

view = current_view()
for run in view.selected:
    record = views.explain_result(run, view.step)
    st.subheader(f"{run.name}: what the prompt does")
    if record is None:
        offer_explain(run, "position importance and the hard prompt")
        continue
    st.caption(views.measured_under({run.name: record.task}))
    if record.step is not None and record.step != views.snapshot_at(run, view.step):
        st.caption(f"Measured at step {record.step}; the step slider is at {view.step}.")
    hard = record.hard_prompt
    shown_hard = "" if hard is None else f"hard prompt **{hard.hard_prompt_accuracy:.3f}**, "
    st.markdown(
        f"Test accuracy: soft **{record.soft_accuracy:.3f}**, {shown_hard}"
        f"nearest tokens **{record.discretised_accuracy:.3f}**, zero-shot **{record.zero_shot_accuracy:.3f}** "
        f"({record.test_examples} test examples)."
    )
    if hard is not None:
        st.markdown(
            f"Hard prompt ({hard.changed_positions} positions changed from the nearest tokens): `{hard.shown}` "
            f"(decoded: `{hard.text}`)"
        )
    if record.faithfulness is not None:
        st.caption("Does each stand-in do what the soft prompt does? (95% paired intervals over the test examples)")
        data_table(record.faithfulness.to_dataframe(), key=f"faith-{run.name}")
    for effects, title in ((record.attribution, "Input attribution"), (record.triggers, "Trigger scan")):
        if effects is not None:
            st.markdown(f"**{title}**. " + effects.to_markdown())
    table = views.explain_table(record)
    data_table(table)
    chart(importance_bars(table, highlight=view.focus), view.figure_format, width="stretch", key=f"imp-{run.name}")
