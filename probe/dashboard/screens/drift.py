"""Drift: how each position moved over training: curves, the top-1 token river, the loss."""

import streamlit as st

from probe.dashboard import prefixes, state, views
from probe.dashboard.sidebar import current_view
from probe.dashboard.widgets import chart, data_table, wait_for
from probe.plots.curves import DRIFT_METRICS, drift_curves, loss_curves, prefix_drift_curves
from probe.plots.heatmaps import token_river

view = current_view()
if view.selected:
    metric = str(st.selectbox("Measure", list(DRIFT_METRICS), format_func=lambda m: DRIFT_METRICS[m]))
    drift = views.up_to(state.drift_of(view.selected, view.model_name), view.step)
    chart(drift_curves(drift, metric, highlight=view.focus), view.figure_format, width="stretch")
    for run in view.selected:
        part = drift[drift["run"] == run.name]
        if not part.empty:
            title = f"{run.name}: top-1 token over training"
            chart(token_river(part, title=title), view.figure_format, width="stretch")
    chart(loss_curves({r.name: r.metrics() for r in view.selected}), view.figure_format, width="stretch")
    st.download_button("drift.csv", drift.to_csv(index=False), "drift.csv", "text/csv")
for prefix in view.prefixes:
    st.subheader(f"{prefix.name} · layer {view.layer}")
    found = wait_for(state.prefix_drift_of(prefix, view.step, view.model_name, view.layer), f"Layer {view.layer}")
    if found is not None:
        table = prefixes.drift_table(found)
        title = f"{prefix.name}: layer {view.layer} over its checkpoints"
        chart(prefix_drift_curves(table, title=title), view.figure_format, width="stretch", key=f"pd-{prefix.name}")
        data_table(table, key=f"prefix-drift-{prefix.name}")
