"""Layer lens: where each position sits inside the model, layer by layer (from ``probe explain``), against each
layer's contextual vocabulary; for causal LMs also the logit lens (the final norm and the unembedding)."""

import streamlit as st

from probe.dashboard import views
from probe.dashboard.jobs import offer_explain
from probe.dashboard.sidebar import current_view
from probe.dashboard.widgets import chart
from probe.plots.heatmaps import lens_heatmap

view = current_view()
for run in view.selected:
    record = views.explain_result(run, view.step)
    st.subheader(f"{run.name}: the prompt layer by layer")
    if record is None:
        offer_explain(run, "the layer lens")
        continue
    if record.lens is None:
        st.caption("No layer lens: the prompt is a prefix, keys and values per layer that no input token stands for.")
        continue
    st.caption(views.measured_under({run.name: record.lens.task or record.task}))
    st.caption(
        f"Hidden states averaged over {record.lens.texts} test texts; 'holds until' is the last layer whose top-1 "
        "is still the input-embedding reading."
    )
    figure = lens_heatmap(views.lens_frame(record))
    chart(figure, view.figure_format, width="stretch", key=f"lens-{run.name}")
    if record.lens.has_logit_lens:
        figure = lens_heatmap(views.lens_frame(record, logit=True), title="Logit lens: the token each layer predicts")
        chart(figure, view.figure_format, width="stretch", key=f"logit-{run.name}")
    else:
        st.caption("No logit lens: it needs a causal LM with a final norm and an unembedding.")
