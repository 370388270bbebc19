"""probe dashboard: read soft prompts, follow them through training, compare initialisations.

Start it with ``probe dashboard [RUNS_DIR]`` (or ``streamlit run app.py -- --runs RUNS_DIR`` in a checkout).
Every number shown comes from the probe package; this page only lays out widgets, caches and figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

st.set_page_config(page_title="probe: soft prompts, readable", page_icon="🔎", layout="wide")


def _cli_runs_dir() -> str:
    """``--runs``, else ``$PROBE_RUNS_DIR``, else ``probe-runs`` (probe.demo.default_runs_dir, without torch)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", default=None)
    args, _ = parser.parse_known_args()
    return args.runs or os.environ.get("PROBE_RUNS_DIR") or "probe-runs"


def _quick_overview(folder: str) -> pd.DataFrame:
    """The runs' manifests as a table, read with json alone: what the page shows while torch and the model load."""
    rows = []
    for manifest in sorted(Path(folder).expanduser().glob("*/manifest.json")):
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        final = m.get("final") or {}
        rows.append(
            {
                "run": manifest.parent.name,
                "init": m.get("init"),
                "positions": m.get("length"),
                "steps": m.get("steps"),
                "status": m.get("status"),
                "accuracy": final.get("accuracy"),
                "discretised": final.get("discrete_accuracy"),
                "zero-shot": m.get("zero_shot_accuracy"),
            }
        )
    return pd.DataFrame(rows)


# A session's first page: the runs at a glance within a second or two, before the heavy imports below.
_first_page = st.empty()
if "warmed" not in st.session_state:
    with _first_page.container():
        st.title("probe: soft prompts, readable")
        overview = _quick_overview(st.session_state.get("runs_dir", _cli_runs_dir()))
        if not overview.empty:
            st.caption("Loading the model and the readings…")
            st.dataframe(overview, hide_index=True)

from probe import plots, views  # noqa: E402
from probe.demo import comparison_table  # noqa: E402
from probe.drift import DRIFT_COLUMNS, drift_table  # noqa: E402
from probe.index import VocabIndex  # noqa: E402
from probe.models import load_model  # noqa: E402
from probe.projection import MapConfig, VocabMap, find_cached_map, fit_map  # noqa: E402
from probe.prompts import load_prompts  # noqa: E402
from probe.reports import FAITHFULNESS_CAVEAT  # noqa: E402
from probe.runs import Run, find_runs  # noqa: E402

# ---------------------------------------------------------------- cached resources


@st.cache_resource(show_spinner="Loading the model…")
def get_model(name: str):
    return load_model(name, device="cpu")


@st.cache_resource(show_spinner="Building the vocabulary index…")
def get_index(name: str) -> VocabIndex:
    return VocabIndex.for_model(get_model(name))


class MapJob:
    """A UMAP fit running in a background thread, so that no page waits on it."""

    def __init__(self, name: str, config: MapConfig, extra: tuple[int, ...]) -> None:
        self.result: VocabMap | None = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, args=(name, config, extra), daemon=True)
        self.thread.start()

    def _run(self, name: str, config: MapConfig, extra: tuple[int, ...]) -> None:
        try:
            self.result = fit_map(get_model(name), get_index(name), config, extra_ids=list(extra))
        except Exception as e:  # shown in the page instead of killing the thread silently
            self.error = f"{type(e).__name__}: {e}"


@st.cache_resource(show_spinner=False)
def map_job(name: str, config: MapConfig, extra: tuple[int, ...]) -> MapJob:
    return MapJob(name, config, extra)


@st.cache_resource(show_spinner="Fitting the PCA map…")
def pca_map(name: str, extra: tuple[int, ...]) -> VocabMap:
    return fit_map(get_model(name), get_index(name), MapConfig(method="pca"), extra_ids=list(extra))


def get_map(name: str, method: str, extra: tuple[int, ...]) -> tuple[VocabMap, str | None]:
    """The requested map, or the PCA map with a note while UMAP is still being fitted."""
    if method == "pca":
        return pca_map(name, extra), None
    config = MapConfig(method="umap")
    cached = find_cached_map(get_model(name), get_index(name), config, extra_ids=list(extra))
    if cached is not None:
        return cached, None
    job = map_job(name, config, extra)
    if job.result is not None:
        return job.result, None
    if job.error:
        return pca_map(name, extra), f"UMAP failed ({job.error}); showing PCA."
    return pca_map(
        name, extra
    ), "UMAP map is being fitted in the background (about a minute the first time); showing PCA."


@st.cache_data(show_spinner=False, max_entries=64)
def get_drift(run_path: str, signature: str, model_name: str, k: int) -> pd.DataFrame:
    run = _run(run_path)
    return drift_table(run, get_model(model_name), index=get_index(model_name), k=k)


@st.cache_data(show_spinner=False, max_entries=32)
def get_comparison(paths: tuple[str, ...], signature: str, model_name: str) -> pd.DataFrame:
    return comparison_table([_run(p) for p in paths], get_model(model_name), get_index(model_name))


@st.cache_data(show_spinner=False, max_entries=256)
def get_report(run_path: str, signature: str, step: int, model_name: str, k: int):
    return views.run_report(_run(run_path), step, get_model(model_name), get_index(model_name), k)


@st.cache_data(show_spinner=False, max_entries=16)
def get_extra(paths: tuple[str, ...], signature: str, model_name: str) -> tuple[int, ...]:
    return tuple(int(i) for i in views.neighbour_ids([_run(p) for p in paths], get_index(model_name), k=5))


@st.cache_data(show_spinner=False, max_entries=16)
def get_paths(paths: tuple[str, ...], signature: str, model_name: str, map_name: str, _vmap: VocabMap) -> pd.DataFrame:
    display = get_model(model_name).vocabulary.display
    return views.trajectories(_vmap, [_run(p) for p in paths], get_index(model_name), display=display)


@st.cache_data(show_spinner=False, max_entries=8)
def get_tokens(model_name: str, map_name: str, _vmap: VocabMap) -> pd.DataFrame:
    return views.map_tokens(_vmap, get_model(model_name).vocabulary.display)


@st.cache_data(show_spinner=False, max_entries=8)
def get_landmarks(model_name: str, map_name: str, labels: tuple[str, ...], _vmap: VocabMap) -> pd.DataFrame:
    from probe.tokens import frequency_ranks

    model = get_model(model_name)
    return views.landmarks(
        get_tokens(model_name, map_name, _vmap), frequency_ranks(model.vocabulary), labels=list(labels)
    )


def _run(path: str) -> Run:
    from probe.runs import load_run

    return load_run(path)


def signature(runs: list[Run]) -> str:
    return "||".join(r.signature for r in runs)


# ---------------------------------------------------------------- sidebar

st.sidebar.title("probe")
st.sidebar.caption("What did the soft prompt learn?")
runs_dir = st.sidebar.text_input("Runs folder", value=st.session_state.get("runs_dir", _cli_runs_dir()))
st.session_state["runs_dir"] = runs_dir
# the view (runs, step, k, map, highlighted position, tab) lives in the URL, so a link reopens the same view
k = st.sidebar.slider("Neighbours per position (k)", 1, 20, 5, key="k", bind="query-params")
figure_format = st.sidebar.selectbox(
    "Figure downloads", plots.DOWNLOAD_FORMATS, key="fmt", help="what the camera on each figure's toolbar saves"
)
_charts = [0]


def chart(fig: Any, *, key: str | None = None, **kwargs: Any) -> Any:
    """A Plotly figure whose toolbar camera saves ``figure_format``, with a link to save it as interactive HTML
    (built only when clicked)."""
    _charts[0] += 1
    title = fig.layout.title.text if fig.layout.title and fig.layout.title.text else "figure"
    name = key or re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:60] or "figure"
    event = st.plotly_chart(fig, key=key, config=plots.download_config(figure_format, name), **kwargs)
    st.download_button(
        "HTML",
        data=lambda: plots.to_html(fig),
        file_name=f"{name}.html",
        mime="text/html",
        key=f"html-{_charts[0]}-{name}",
        type="tertiary",
        icon=":material/download:",
        help="this figure as an interactive HTML page",
    )
    return event


method = st.sidebar.radio(
    "Map",
    ["umap", "pca"],
    index=0 if os.environ.get("PROBE_MAP", "umap") == "umap" else 1,
    horizontal=True,
    help="UMAP is fitted once per model and cached; PCA is instant.",
    key="projection",
    bind="query-params",
)

runs = find_runs(runs_dir)
runs = [r for r in runs if r.steps]

st.title("probe: soft prompts, readable")
if not runs:
    st.info(
        f"No runs in `{runs_dir}` yet. Train the demo runs with `probe demo --out {runs_dir}` "
        "(about two minutes on two CPU cores), or train your own with `probe train`. "
        "You can still inspect a prompt file in the last tab."
    )

names = [r.name for r in runs]
selected_names = st.sidebar.multiselect("Runs", names, default=names, key="runs", bind="query-params")
selected = [r for r in runs if r.name in selected_names]
models = sorted({r.manifest.get("model") or "default" for r in selected})  # a tensor file per step names none
if len(models) > 1:
    st.sidebar.warning(f"Selected runs use different models ({', '.join(models)}); showing those of {models[0]}.")
    selected = [r for r in selected if (r.manifest.get("model") or "default") == models[0]]
model_name = models[0] if models else "default"

all_steps = sorted({s for r in selected for s in r.steps})
if "pending_step" in st.session_state:  # a frame of the animation, applied before the slider exists
    st.session_state["step"] = st.session_state.pop("pending_step")
step = (
    st.sidebar.select_slider("Step", options=all_steps, value=all_steps[-1], key="step", bind="query-params")
    if len(all_steps) > 1
    else (all_steps[0] if all_steps else 0)
)
if len(all_steps) > 1 and st.sidebar.toggle("Play through training", key="play", help="Steps every view together"):

    @st.fragment(run_every=1.5)
    def _next_frame() -> None:
        import time

        # the body also runs with the whole page; a frame advances only once its time has come
        if time.monotonic() - st.session_state.get("frame_at", 0.0) < 1.4:
            return
        st.session_state["frame_at"] = time.monotonic()
        later = [s for s in all_steps if s > st.session_state.get("step", step)]
        st.session_state["pending_step"] = later[0] if later else all_steps[0]  # loops back to the start
        st.rerun()

    with st.sidebar:
        _next_frame()
positions = max((int(r.manifest["length"]) for r in selected), default=0)  # no snapshot read per rerun
highlight_options = ["none", *range(positions)]
if "pending_highlight" in st.session_state:  # a click in a table or the map, applied before the widget exists
    st.session_state["highlight"] = st.session_state.pop("pending_highlight")
if st.session_state.get("highlight") not in highlight_options:
    st.session_state["highlight"] = "none"
highlight = st.sidebar.selectbox("Highlight position", highlight_options, key="highlight", bind="query-params")
focus = None if highlight == "none" else int(highlight)
if any(r.status == "running" for r in selected):
    st.sidebar.info("A selected run is still training; the page refreshes as snapshots arrive.")
    seen = signature(selected)

    @st.fragment(run_every=5)
    def _watch_runs() -> None:
        fresh = [r for r in find_runs(runs_dir) if r.name in selected_names]
        if signature(fresh) != seen:
            st.rerun()

    with st.sidebar:
        _watch_runs()


def shown(tab: object) -> bool:
    """Whether a tab's content is computed: the open one (all of them where Streamlit does not say which is open)."""
    return getattr(tab, "open", None) is not False


TABS = ["Nearest tokens", "Drift", "Map", "Compare", "Findings", "Inspect a file", "Explain", "Side by side"]
tabs = st.tabs(TABS, key="tab", bind="query-params")

# ---------------------------------------------------------------- nearest tokens

with tabs[0]:
    if shown(tabs[0]) and selected:  # only the open tab is computed
        query = st.text_input("Which positions are near…", placeholder="e.g. fear, science", key="token_query")
        for run in selected:
            at = views.snapshot_at(run, step)
            report = get_report(str(run.path), signature([run]), at, model_name, k)
            table = views.position_table(report)
            hits = views.search_positions(report, query) if query else None
            if hits is not None:
                table = table[table["position"].isin(hits)]
            st.subheader(f"{run.name} · step {at}")
            st.caption(
                f"init {run.manifest.get('init')} · {len(report.positions)} positions · "
                f"{report.summary.on_manifold_share:.0%} on the token manifold · status {run.status}"
            )
            styled = table.style.apply(
                lambda row: ["background-color: #fff3b0" if row["position"] == focus else "" for _ in row], axis=1
            ).format({"top1_cos": "{:.3f}", "margin": "{:.3f}", "norm_x_vocab": "{:.2f}", "manifold_pct": "{:.0f}"})
            event = st.dataframe(
                styled,
                hide_index=True,
                width="stretch",
                on_select="rerun",
                selection_mode="single-row",
                key=f"table-{run.name}",
            )
            rows = event.selection.rows if event and event.selection else []
            if rows:
                picked = int(table.iloc[rows[0]]["position"])
                if picked != focus:
                    st.session_state["pending_highlight"] = picked
                    st.rerun()
            with st.expander("Cosine heatmap of the neighbours"):
                chart(plots.neighbour_heatmap(report.to_dataframe()), width="stretch", key=f"heat-{run.name}")
            c1, c2 = st.columns(2)
            c1.download_button(
                "report.csv", report.to_csv(), f"{run.name}-step{at}.csv", "text/csv", key=f"csv-{run.name}"
            )
            c2.download_button(
                "report.json",
                report.to_json(),
                f"{run.name}-step{at}.json",
                "application/json",
                key=f"json-{run.name}",
            )
        model_now = get_model(model_name)
        for name, prompts in st.session_state.get("uploads", {}).items():
            for prompt in prompts:
                if prompt.dim == model_now.dim:
                    report = views.prompt_report(prompt, model_now, get_index(model_name), k)
                    st.subheader(f"{prompt.source}" + (f" ({prompt.role} prompt)" if prompt.role else ""))
                    st.dataframe(views.position_table(report), hide_index=True, width="stretch", key=f"up-{name}")
        if selected:
            st.caption(FAITHFULNESS_CAVEAT)

# ---------------------------------------------------------------- drift

with tabs[1]:
    if shown(tabs[1]) and selected:  # only the open tab is computed
        metric = str(st.selectbox("Measure", list(plots.DRIFT_METRICS), format_func=lambda m: plots.DRIFT_METRICS[m]))
        frames = [get_drift(str(r.path), signature([r]), model_name, 5) for r in selected]
        drift = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", *DRIFT_COLUMNS])
        drift = drift[drift["step"] <= step]
        chart(plots.drift_curves(drift, metric, highlight=focus), width="stretch")
        for run in selected:
            part = drift[drift["run"] == run.name]
            if not part.empty:
                chart(plots.token_river(part, title=f"{run.name}: top-1 token over training"), width="stretch")
        chart(plots.loss_curves({r.name: r.metrics() for r in selected}), width="stretch")
        st.download_button("drift.csv", drift.to_csv(index=False), "drift.csv", "text/csv")

# ---------------------------------------------------------------- map

with tabs[2]:
    if shown(tabs[2]) and selected:  # only the open tab is computed
        extra = get_extra(tuple(str(r.path) for r in runs), signature(runs), model_name)
        vmap, note = get_map(model_name, method, extra)
        map_name = f"{vmap.config.method}-{len(vmap.token_ids)}-{vmap.fit_seconds}"
        if note:
            st.info(note)

            @st.fragment(run_every=5)
            def _wait_for_map() -> None:
                if get_map(model_name, method, extra)[1] is None:
                    st.rerun()

            _wait_for_map()
        paths = get_paths(tuple(str(r.path) for r in selected), signature(selected), model_name, map_name, vmap)
        uploads = st.session_state.get("uploads", {})
        if uploads:  # uploaded prompts join the map as one more prompt each
            display = get_model(model_name).vocabulary.display
            placed = views.placed_prompts(vmap, uploads, get_index(model_name), display=display, step=step)
            paths = pd.concat([paths, placed], ignore_index=True)
        c1, c2, c3 = st.columns(3)
        color_by = c1.radio("Colour by", ["run", "init"], horizontal=True)
        show_top1 = c2.toggle("Top-1 token of each position", value=True)
        show_words = c3.toggle("Landmark words and class labels", value=True)
        tokens = get_tokens(model_name, map_name, vmap)
        words = get_landmarks(model_name, map_name, tuple(sorted({lb for r in selected for lb in r.labels})), vmap)
        fig = plots.prompt_map(
            tokens,
            paths,
            step=step,
            highlight=focus,
            color_by=color_by,
            landmarks=words if show_words else None,
            label_positions=show_top1,
        )
        chosen = chart(fig, width="stretch", on_select="rerun", selection_mode="points", key="map")
        points = chosen.selection.points if chosen and chosen.selection else []
        if points and "customdata" in points[0]:
            picked = int(points[0]["customdata"][0])
            if picked != focus:
                st.session_state["pending_highlight"] = picked
                st.rerun()
        st.caption(
            f"{vmap.config.method.upper()} map of {len(vmap.token_ids):,} tokens · trustworthiness "
            f"{vmap.trustworthiness:.2f} · crosses mark positions off the token manifold: the map still draws them "
            "among their nearest tokens, but they are far from all of them."
        )

# ---------------------------------------------------------------- compare

with tabs[3]:
    if shown(tabs[3]) and selected:  # only the open tab is computed
        table = get_comparison(tuple(str(r.path) for r in selected), signature(selected), model_name)
        st.dataframe(table, hide_index=True, width="stretch")
        chart(plots.init_comparison(table), width="stretch")
        st.download_button("comparison.csv", table.to_csv(index=False), "comparison.csv", "text/csv")

# ---------------------------------------------------------------- findings

with tabs[4]:
    if shown(tabs[4]):  # only the open tab is computed
        findings_dir = st.text_input(
            "Replication folder", value=os.environ.get("PROBE_REPLICATE_DIR", "probe-replicate")
        )
        reports = views.findings_reports(findings_dir)
        if not reports:
            st.info(
                f"No report in `{findings_dir}` yet. Measure the paper's findings with "
                f"`probe replicate --quick --out {findings_dir}` (it prints its time estimate before it starts; "
                "a few minutes on two CPU cores). Reports in subfolders (one per data set or `--task`) are shown "
                "side by side."
            )
        elif len(reports) == 1:
            st.markdown(reports[0].markdown)
        else:
            st.subheader(f"{len(reports)} reports side by side")
            st.caption("verdict: learned [95% CI]; at init = the same reading on the runs' step-0 snapshots")
            st.dataframe(views.findings_side_by_side(reports), hide_index=True, width="stretch")
            for report, tab in zip(reports, st.tabs([r.label for r in reports]), strict=True):
                with tab:
                    st.caption(f"`{report.folder}`")
                    st.markdown(report.markdown)

# ---------------------------------------------------------------- inspect a file

with tabs[5]:
    if shown(tabs[5]):  # only the open tab is computed
        file_model = st.text_input("Model", value="default")
        uploaded = st.file_uploader(
            "Upload a prompt: .safetensors, .npy, .pt, or a zipped PEFT adapter folder "
            f"(up to {views.MAX_UPLOAD_MB} MB)",
            type=[s.lstrip(".") for s in views.UPLOAD_SUFFIXES],
            max_upload_size=views.MAX_UPLOAD_MB,
        )
        path = st.text_input(
            "…or a file under the runs folder", placeholder="runs-folder/…/adapter or prompt.safetensors"
        )
        found: list = []
        try:
            if uploaded is not None:
                found = views.read_upload(uploaded.name, uploaded.getvalue())
                uploads = st.session_state.setdefault("uploads", {})
                if uploaded.name not in uploads:  # joins the other tabs (tables, map) from the next run on
                    uploads[uploaded.name] = found
                    st.rerun()
            if path:
                found += load_prompts(views.under_folder(path, runs_dir))
            model = get_model(file_model)
            for prompt in found:
                prompt.check_dim(model.dim, model.name)
                report = views.prompt_report(prompt, model, get_index(file_model), k)
                st.subheader(f"{prompt.source}" + (f" ({prompt.role} prompt)" if prompt.role else ""))
                st.dataframe(views.position_table(report), hide_index=True, width="stretch")
                chart(plots.neighbour_heatmap(report.to_dataframe()), width="stretch")
        except (ValueError, FileNotFoundError, TypeError) as e:
            st.error(" ".join(str(e).split()))  # one line, as the CLI says it

# ---------------------------------------------------------------- explain: what the prompt does

with tabs[6]:
    if shown(tabs[6]):  # only the open tab is computed
        for run in selected:
            result = views.explain_result(run, step)
            st.subheader(f"{run.name}: what the prompt does")
            if result is None:
                st.info(
                    f"Not measured yet: `probe explain {run.path}` writes position importance, a hard prompt "
                    "and a layer lens into the run folder."
                )
                continue
            if result.get("step") is not None and result["step"] != views.snapshot_at(run, step):
                st.caption(f"Measured at step {result['step']}; the step slider is at {step}.")
            hard = result["hard_prompt"]
            st.markdown(
                f"Test accuracy: soft **{result['soft_accuracy']:.3f}**, hard prompt **{hard['accuracy']:.3f}**, "
                f"nearest tokens **{result['discretised_accuracy']:.3f}**, "
                f"zero-shot **{result['zero_shot_accuracy']:.3f}** ({result['test_examples']} test examples)."
            )
            st.markdown(
                f"Hard prompt ({hard['changed_positions']} positions changed from the nearest tokens): `{hard['text']}`"
            )
            table = views.explain_table(result)
            st.dataframe(table, hide_index=True, width="stretch")
            chart(plots.importance_bars(table, highlight=focus), width="stretch", key=f"imp-{run.name}")
            chart(plots.lens_heatmap(views.lens_frame(result)), width="stretch", key=f"lens-{run.name}")

# ---------------------------------------------------------------- side by side: one column per initialisation

with tabs[7]:
    if shown(tabs[7]):  # only the open tab is computed
        columns = views.init_columns(selected)
        if columns:
            drift_all = {r.name: get_drift(str(r.path), signature([r]), model_name, 5) for r in selected}
            travels = {
                name: views.travel_by_step(pd.concat([drift_all[r.name] for r in group], ignore_index=True))
                for name, group in columns.items()
            }
            low = min([float(t["low"].min()) for t in travels.values() if not t.empty] + [0.9])
            y_range = (max(-1.0, low - 0.02), 1.005)  # one axis for every column
            side_map, _ = get_map(
                model_name, method, get_extra(tuple(str(r.path) for r in runs), signature(runs), model_name)
            )
            side_map_name = f"{side_map.config.method}-{len(side_map.token_ids)}-{side_map.fit_seconds}"
            side_tokens = get_tokens(model_name, side_map_name, side_map)
            side_paths = get_paths(
                tuple(str(r.path) for r in selected), signature(selected), model_name, side_map_name, side_map
            )
            for column, (name, group) in zip(st.columns(len(columns)), columns.items(), strict=True):
                with column:
                    seeds = f" · {len(group)} seeds" if len(group) > 1 else ""
                    st.markdown(f"**{name}**{seeds}")
                    first = drift_all[group[0].name]
                    river = first[first["step"] <= step]
                    chart(
                        plots.token_river(river, title=f"top-1 token ({group[0].name})"),
                        width="stretch",
                        key=f"side-river-{name}",
                    )
                    chart(
                        plots.travel_curve(travels[name], title="cosine to the initial vector", y_range=y_range),
                        width="stretch",
                        key=f"side-travel-{name}",
                    )
                    chart(plots.accuracy_bars(views.accuracy_spread(group)), width="stretch", key=f"side-acc-{name}")
                    own = side_paths[side_paths["run"].isin([r.name for r in group])]
                    small = plots.prompt_map(side_tokens, own, step=step, highlight=focus, label_positions=False)
                    small.update_layout(
                        height=320, showlegend=False, title=None, margin={"t": 10, "l": 0, "r": 0, "b": 0}
                    )
                    chart(small, width="stretch", key=f"side-map-{name}")

_first_page.empty()  # the full page is drawn: the quick overview gives way
st.session_state["warmed"] = True
