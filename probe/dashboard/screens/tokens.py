"""Nearest tokens: each selected run's snapshot at the step, one row per position, with token search."""

import streamlit as st

from probe.dashboard import prefixes, state, views
from probe.dashboard.sidebar import current_view, highlight
from probe.dashboard.widgets import chart, data_table, highlighted, wait_for
from probe.plots.heatmaps import neighbour_heatmap
from probe.readings.reports import FAITHFULNESS_CAVEAT

view = current_view()
if not view.runs and not view.prefix_runs:
    st.info(
        f"No runs in `{view.runs_dir}` yet. Train the demo runs with `probe demo --out {view.runs_dir}` "
        "(about three minutes on two CPU cores), or train your own with `probe train`. "
        "You can still inspect a prompt file on the Inspect a file page."
    )
query = st.text_input("Which positions are near…", placeholder="e.g. fear, science", key="token_query")
for run in view.selected:
    at = views.snapshot_at(run, view.step)
    report = state.report_of(run, at, view.model_name, view.k)
    table = views.filtered_table(report, query)
    st.subheader(f"{run.name} · " + (f"task {run.task} · " if run.task is not None else "") + f"step {at}")
    st.caption(
        f"init {run.manifest.init} · {len(report.positions)} positions · "
        f"{report.summary.on_manifold_share:.0%} on the token manifold · status {run.status}"
    )
    event = data_table(
        highlighted(table, view.focus),
        on_select="rerun",
        selection_mode="single-row",
        key=f"table-{run.name}",
    )
    if event and event.selection and event.selection.rows:
        highlight(int(table.iloc[event.selection.rows[0]]["position"]), view.focus)
    with st.expander("Cosine heatmap of the neighbours"):
        chart(neighbour_heatmap(report.to_dataframe()), view.figure_format, width="stretch", key=f"heat-{run.name}")
    left, right = st.columns(2)
    left.download_button("report.csv", report.to_csv(), f"{run.name}-step{at}.csv", "text/csv", key=f"csv-{run.name}")
    right.download_button(
        "report.json", report.to_json(), f"{run.name}-step{at}.json", "application/json", key=f"json-{run.name}"
    )
for prefix in view.prefixes:
    at = views.step_at(prefix.steps, view.step)
    st.subheader(f"{prefix.name} · layer {view.layer} · step {at}")
    st.caption(
        f"{prefix.kind}: {prefix.length} positions x {prefix.num_layers} layers. Each position's key and value at "
        "this layer beside real tokens' own keys and values there (the layer is picked in the sidebar)."
    )
    report = wait_for(state.prefix_reading(prefix, at, view.model_name, view.k, view.layer), f"Layer {view.layer}")
    for reading in [report.layer(view.layer, part) for part in ("key", "value")] if report else []:
        st.caption(prefixes.layer_caption(reading))
        table = views.filtered_table(reading, query)
        data_table(highlighted(table, view.focus), key=f"prefix-{prefix.name}-{reading.part}")
if view.runs:
    model = state.get_model(view.model_name)
    for name, prompts in st.session_state.get("uploads", {}).items():
        for prompt in prompts:
            if prompt.dim == model.dim:
                report = views.prompt_report(prompt, model, state.get_index(view.model_name), view.k)
                st.subheader(views.prompt_title(prompt))
                data_table(views.position_table(report), key=f"up-{name}")
if view.selected or view.prefixes:
    st.caption(FAITHFULNESS_CAVEAT)
