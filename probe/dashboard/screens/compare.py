"""Compare: the selected runs in one table: accuracies, how far they travelled, init tokens kept, labels near."""

import streamlit as st

from probe.dashboard import state, views
from probe.dashboard.sidebar import current_view
from probe.dashboard.widgets import chart, data_table
from probe.plots.bars import init_comparison

view = current_view()
if view.prefixes:
    names = ", ".join(p.name for p in view.prefixes)
    st.caption(
        f"Not here: {names}, a key and a value per layer rather than input rows (the Nearest tokens and "
        "Drift pages read them, layer by layer)."
    )
if view.selected:
    table = state.get_comparison(state.paths(view.selected), state.signature(view.selected), view.model_name)
    data_table(table)
    st.caption(views.measured_under({r.name: r.manifest.task_form for r in view.selected}, "Accuracies measured"))
    chart(init_comparison(table), view.figure_format, width="stretch")
    st.download_button("comparison.csv", table.to_csv(index=False), "comparison.csv", "text/csv")
