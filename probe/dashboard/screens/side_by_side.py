"""Side by side: one column per initialisation (runs that differ only by seed share one): the token river, the
cosine to the initial vector on a shared axis, the accuracies, and a small map of its trajectories."""

import streamlit as st

from probe.dashboard import state, views
from probe.dashboard.sidebar import current_view
from probe.dashboard.widgets import chart
from probe.plots.bars import accuracy_bars
from probe.plots.curves import travel_curve
from probe.plots.heatmaps import token_river
from probe.plots.maps import small_map

view = current_view()
columns = views.init_columns(view.selected)
if columns:
    drift = state.drift_of(view.selected, view.model_name)
    travels = {name: views.travel_by_step(views.up_to(drift, None, runs=group)) for name, group in columns.items()}
    y_range = views.shared_range(list(travels.values()))
    vmap, _ = state.shared_map(view.runs, view.model_name, view.method)
    name = views.map_id(vmap)
    tokens = state.get_tokens(view.model_name, name, vmap)
    paths = state.get_paths(state.paths(view.selected), state.signature(view.selected), view.model_name, name, vmap)
    st.caption(views.measured_under({r.name: r.manifest.task_form for r in view.selected}, "Accuracies measured"))
    for column, (title, group) in zip(st.columns(len(columns)), columns.items(), strict=True):
        with column:
            st.markdown(f"**{title}**" + (f" · {len(group)} seeds" if len(group) > 1 else ""))
            river = views.up_to(drift, view.step, runs=group[:1])
            figure = token_river(river, title=f"top-1 token ({group[0].name})")
            chart(figure, view.figure_format, width="stretch", key=f"side-river-{title}")
            figure = travel_curve(travels[title], title="cosine to the initial vector", y_range=y_range)
            chart(figure, view.figure_format, width="stretch", key=f"side-travel-{title}")
            figure = accuracy_bars(views.accuracy_spread(group))
            chart(figure, view.figure_format, width="stretch", key=f"side-acc-{title}")
            own = views.of_runs(paths, group)
            figure = small_map(tokens, own, step=view.step, highlight=view.focus)
            chart(figure, view.figure_format, width="stretch", key=f"side-map-{title}")
