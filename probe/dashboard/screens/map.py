"""Map: the vocabulary in 2-D (UMAP, fitted once per model in the background; PCA meanwhile), with every
snapshot of every selected run placed in it and its words written on it."""

import streamlit as st

from probe.dashboard import state, views
from probe.dashboard.sidebar import current_view, highlight
from probe.dashboard.widgets import chart
from probe.plots.maps import prompt_map

view = current_view()
if view.prefixes:
    names = ", ".join(p.name for p in view.prefixes)
    st.caption(
        f"Not here: {names}, a key and a value per layer rather than input rows (the Nearest tokens and "
        "Drift pages read them, layer by layer)."
    )


@st.fragment(run_every=5)
def _wait_for_map() -> None:
    if state.shared_map(view.runs, view.model_name, view.method)[1] is None:
        st.rerun()


if view.selected:
    vmap, note = state.shared_map(view.runs, view.model_name, view.method)
    if note:
        st.info(note)
        _wait_for_map()
    name = views.map_id(vmap)
    paths = state.get_paths(state.paths(view.selected), state.signature(view.selected), view.model_name, name, vmap)
    uploads = st.session_state.get("uploads", {})
    if uploads:  # uploaded prompts join the map as one more prompt each
        display = state.get_model(view.model_name).vocabulary.display
        placed = views.placed_prompts(vmap, uploads, state.get_index(view.model_name), display=display, step=view.step)
        paths = views.joined(paths, placed)
    c1, c2, c3 = st.columns(3)
    color_by = c1.radio("Colour by", ["run", "init"], horizontal=True)
    show_top1 = c2.toggle("Top-1 token of each position", value=True)
    show_words = c3.toggle("Landmark words and class labels", value=True)
    labels = tuple(sorted({label for r in view.selected for label in r.labels}))
    words = state.get_landmarks(view.model_name, name, labels, vmap) if show_words else None
    fig = prompt_map(
        state.get_tokens(view.model_name, name, vmap),
        paths,
        step=view.step,
        highlight=view.focus,
        color_by=color_by,
        landmarks=words,
        label_positions=show_top1,
    )
    chosen = chart(fig, view.figure_format, width="stretch", on_select="rerun", selection_mode="points", key="map")
    points = chosen.selection.points if chosen and chosen.selection else []
    if points and "customdata" in points[0]:
        highlight(int(points[0]["customdata"][0]), view.focus)
    st.caption(
        f"{vmap.config.method.upper()} map of {len(vmap.token_ids):,} tokens · trustworthiness "
        f"{vmap.trustworthiness:.2f} · crosses mark positions off the token manifold: the map still draws them "
        "among their nearest tokens, but they are far from all of them."
    )
