"""Audit: a ``probe audit`` report. The ground truth of a planted shortcut first, then which reading finds it."""

import streamlit as st

from probe.dashboard import settings
from probe.dashboard.sidebar import current_view
from probe.dashboard.widgets import chart, data_table
from probe.experiments.audit.figure import audit_figure
from probe.experiments.audit.table import audit_report, found_table, ground_truth, readings_table

view = current_view()
folder = settings.audit_dir()
if settings.folders_editable():
    folder = str(st.text_input("Audit folder", value=folder))
else:
    st.caption(f"Audit folder: `{folder}`")
report = audit_report(folder)
if report is None:
    st.info(
        f"No audit report in `{folder}` yet. Plant a marker and measure which reading finds it with "
        f"`probe audit --into LABEL --quick --out {folder}` (it prints its time estimate first)."
    )
else:
    c = report.context
    st.markdown(
        f"Marker `{c.get('marker')}` appended to {max(c.get('shares', [0])):.0%} of the `{c.get('into')}` "
        f"training texts." + (f" {report.headline()}." if report.conclusive else "")
    )
    if report.training():
        st.caption(f"Training: {report.training()}.")
    if not report.conclusive:
        advice = report.advice()
        st.warning(f"**{report.headline()}**. No reading is judged. {advice[:1].upper()}{advice[1:]}.")
    st.subheader("Ground truth: does each run rely on the marker?")
    data_table(ground_truth(report), key="audit-truth")
    if report.conclusive:
        st.subheader("Which reading finds it?")
        data_table(readings_table(report), key="audit-readings")
        chart(audit_figure(report), view.figure_format, width="stretch", key="audit-figure")
    else:
        st.subheader("What each reading found, per run (not a finding)")
        data_table(found_table(report), key="audit-found")
