"""Inspect a file: upload a prompt (a tensor file or a zipped PEFT adapter), or name one under the runs folder,
and read its nearest tokens. Uploads join the other pages as one more prompt."""

import streamlit as st

from probe.dashboard import state, views
from probe.dashboard.sidebar import current_view
from probe.dashboard.uploads import MAX_UPLOAD_MB, UPLOAD_SUFFIXES, read_server_file, read_upload
from probe.dashboard.widgets import chart, data_table, show_error
from probe.plots.heatmaps import neighbour_heatmap

view = current_view()
file_model = st.text_input("Model", value="default")
uploaded = st.file_uploader(
    f"Upload a prompt: .safetensors, .npy, .pt, or a zipped PEFT adapter folder (up to {MAX_UPLOAD_MB} MB)",
    type=[s.lstrip(".") for s in UPLOAD_SUFFIXES],
    max_upload_size=MAX_UPLOAD_MB,
)
path = st.text_input("…or a file under the runs folder", placeholder="runs-folder/…/adapter or prompt.safetensors")
try:
    found = []
    if uploaded is not None:
        found = read_upload(uploaded.name, uploaded.getvalue())
        uploads = st.session_state.setdefault("uploads", {})
        if uploaded.name not in uploads:  # joins the other pages (tables, map) from the next run on
            uploads[uploaded.name] = found
            st.rerun()
    if path:
        found += read_server_file(path, view.runs_dir)
    model = state.get_model(file_model)
    for i, prompt in enumerate(found):
        prompt.check_dim(model.dim, model.name)
        report = views.prompt_report(prompt, model, state.get_index(file_model), view.k)
        st.subheader(views.prompt_title(prompt))
        data_table(views.position_table(report))
        chart(neighbour_heatmap(report.to_dataframe()), view.figure_format, width="stretch", key=f"inspect-{i}")
except (ValueError, FileNotFoundError, TypeError) as e:
    show_error(e)
