"""Map: the vocabulary in 2-D (UMAP, fitted once per model in the background; PCA meanwhile), with every
snapshot of every selected run placed in it and its words written on it; a prefix on the map of its picked
layer's keys or values."""

import streamlit as st

from probe.dashboard import state, views
from probe.dashboard.sidebar import current_view, highlight
from probe.dashboard.widgets import chart, wait_for
from probe.plots.maps import prompt_map

view = current_view()


@st.fragment(run_every=5)
def _wait_for_map(shown: str) -> None:
    if state.shared_map(view.runs, view.model_name, view.method)[1] != shown:  # fitted, or refused: say so
        st.rerun()


if view.selected:
    vmap, note = state.shared_map(view.runs, view.model_name, view.method)
    if note:
        st.info(note)
        _wait_for_map(note)
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
if view.prefixes:
    part: state.Part = (
        "value" if st.radio("A prefix's", ["key", "value"], horizontal=True, key="prefix_part") == "value" else "key"
    )
    st.subheader(f"Prefixes at layer {view.layer}: their {part}s among real tokens' {part}s there")
    what = f"The map of layer {view.layer}'s {part}s"
    job = state.prefix_map_of(view.prefixes, view.model_name, view.layer, part, view.method)
    found = wait_for(job, what)
    if found is not None:
        lmap, lpaths = found
        tokens = views.map_tokens(lmap, state.get_model(view.model_name).vocabulary.display)
        title = f"Prefix {part}s at layer {view.layer} among real tokens' {part}s"
        fig = prompt_map(tokens, lpaths, step=view.step, highlight=view.focus, title=title)
        chart(fig, view.figure_format, width="stretch", key="prefix-map")
        st.caption(
            f"{lmap.config.method.upper()} map of {len(lmap.token_ids):,} tokens' {part}s at layer {view.layer} "
            f"(each token alone through the model) · trustworthiness {lmap.trustworthiness:.2f} · every checkpoint "
            "of each prefix placed among its nearest tokens there; the layer is picked in the sidebar."
        )
