"""Findings: the ``probe replicate`` reports in the replication folder, several side by side."""

import streamlit as st

from probe.dashboard import settings
from probe.dashboard.sidebar import current_view
from probe.dashboard.widgets import data_table
from probe.experiments.replicate.table import findings_reports, findings_side_by_side

current_view()  # the shared sidebar, as on every page
folder = settings.replicate_dir()
if settings.folders_editable():
    folder = str(st.text_input("Replication folder", value=folder))
else:
    st.caption(f"Replication folder: `{folder}`")
reports = findings_reports(folder)
if not reports:
    st.info(
        f"No report in `{folder}` yet. Measure the paper's findings with `probe replicate --quick --out {folder}` "
        "(it prints its time estimate before it starts; a few minutes on two CPU cores). Reports in subfolders "
        "(one per data set or `--task`) are shown side by side."
    )
elif len(reports) == 1:
    st.markdown(reports[0].markdown)
else:
    st.subheader(f"{len(reports)} reports side by side")
    st.caption("verdict: learned [95% CI]; at init = the same reading on the runs' step-0 snapshots")
    data_table(findings_side_by_side(reports))
    for report, tab in zip(reports, st.tabs([r.label for r in reports]), strict=True):
        with tab:
            st.caption(f"`{report.folder}`")
            st.markdown(report.markdown)
