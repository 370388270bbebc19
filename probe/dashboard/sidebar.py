"""The shared sidebar: which runs, which step, k, the map, the highlighted position and the figure format. Every
widget keeps its value in the URL, so a link reopens the same view on any page.

:func:`sidebar` draws it once per rerun (the entry does) and returns a :class:`View` that the pages read with
:func:`current_view`; a page run on its own (``AppTest.from_file``) draws the sidebar itself.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import streamlit as st

from probe.dashboard import settings, state, views
from probe.dashboard.prefixes import PrefixRun, prefix_runs
from probe.formats.discovery import find_runs
from probe.formats.run import Run
from probe.plots.export import DOWNLOAD_FORMATS

_RERUN = threading.local()  # the view of the rerun in progress (each session's reruns run in its script thread)


@dataclass
class View:
    """What the sidebar chose, for the pages.

    Attributes:
        runs_dir: the runs folder the server reads.
        runs: every run in it with a snapshot.
        selected: the runs shown (all of one model).
        model_name: their model.
        step: the step every view shows (each run at its last snapshot at or before it).
        k: neighbours per position.
        focus: the highlighted position, or None.
        method: the map ("umap" or "pca").
        figure_format: what figure downloads save.
        task: the task every multitask run is read as (None when no run is one).
        prefix_runs: every folder of prefix checkpoints in the runs folder (read per layer, not as runs).
        prefixes: those shown (of the same model as ``selected``).
        layer: the layer every prefix is read at.
    """

    runs_dir: str
    runs: list[Run] = field(default_factory=list)
    selected: list[Run] = field(default_factory=list)
    model_name: str = "default"
    step: int = 0
    k: int = 5
    focus: int | None = None
    method: str = "umap"
    figure_format: str = "png"
    task: int | None = None
    prefix_runs: list[PrefixRun] = field(default_factory=list)
    prefixes: list[PrefixRun] = field(default_factory=list)
    layer: int = 0


def current_view() -> View:
    """The view the entry's sidebar chose on this rerun, or a fresh sidebar when the page runs on its own."""
    view = getattr(_RERUN, "view", None)
    return view if isinstance(view, View) else sidebar()


@contextlib.contextmanager
def shared(view: View) -> Iterator[None]:
    """Give ``view`` to the pages run inside (the entry wraps ``st.navigation(...).run()`` in it)."""
    _RERUN.view = view
    try:
        yield
    finally:
        _RERUN.view = None


def sidebar() -> View:
    """Draw the shared sidebar and return the view it sets."""
    st.sidebar.title("probe")
    st.sidebar.caption("What did the soft prompt learn?")
    view = View(runs_dir=_runs_folder())
    view.k = int(st.sidebar.slider("Neighbours per position (k)", 1, 20, 5, key="k", bind="query-params"))
    view.figure_format = str(
        st.sidebar.selectbox(
            "Figure downloads", DOWNLOAD_FORMATS, key="fmt", help="what the camera on each figure's toolbar saves"
        )
    )
    view.method = str(
        st.sidebar.radio(
            "Map",
            ["umap", "pca"],
            index=0 if os.environ.get("PROBE_MAP", "umap") == "umap" else 1,
            horizontal=True,
            help="UMAP is fitted once per model and cached; PCA is instant.",
            key="projection",
            bind="query-params",
        )
    )
    view.runs, skipped = views.readable_runs(view.runs_dir)
    view.prefix_runs = prefix_runs(view.runs_dir)
    read_per_layer = {p.name for p in view.prefix_runs}
    for line in skipped:
        if line.split(": ", 1)[0] not in read_per_layer:
            st.sidebar.warning(f"Skipped {line}")
    _choose_task(view)
    _choose_runs(view)
    _choose_layer(view)
    _choose_step(view)
    _choose_focus(view)
    _watch_running(view)
    return view


def _runs_folder() -> str:
    folder = settings.runs_dir()
    if settings.folders_editable():
        return str(st.sidebar.text_input("Runs folder", value=st.session_state.get("runs_dir", folder), key="runs_dir"))
    st.sidebar.caption(f"Runs folder: `{folder}`")
    return folder


def _choose_task(view: View) -> None:
    """The task every multitask run is read as (each task has its own prompt): each such run in ``view.runs``
    becomes its task's, and one without that task is left out with a line that says so."""
    tasks = sorted({t for r in view.runs for t in r.task_ids})
    if not tasks:
        return
    help = "a multitask prompt holds one prompt per task: every page reads this task's"
    view.task = _linked_choice("Task", "task", tasks, "these runs", help)
    kept = []
    for run in view.runs:
        if run.task_ids and view.task not in run.task_ids:
            st.sidebar.warning(f"{run.name} has tasks 0 to {run.task_ids[-1]}; it has no task {view.task}.")
        else:
            kept.append(run.for_task(view.task) if run.task_ids else run)
    view.runs = kept


def _linked_choice(label: str, key: str, options: list[int], owners: str, help: str) -> int:
    """A sidebar number bound to the URL (``?key=``); a value a hand-edited link gives and ``options`` lack is one
    line (the key is the noun: "Task 9 is not a task of these runs"), then the first option is read."""
    asked = st.session_state[key] if key in st.session_state else st.query_params.get(key)
    if asked is not None and str(asked) not in {str(o) for o in options}:
        pick = f"pick one from {options[0]} to {options[-1]}"
        st.sidebar.warning(f"{key.capitalize()} {asked} is not a {key} of {owners}; {pick}.")
        st.session_state[key] = options[0]
    return int(st.sidebar.selectbox(label, options, key=key, bind="query-params", help=help))


def _choose_runs(view: View) -> None:
    names = [r.name for r in view.runs] + [p.name for p in view.prefix_runs]
    if "pending_runs" in st.session_state:  # a point clicked on the Frontier page, applied before the widget exists
        st.session_state["runs"] = [n for n in st.session_state.pop("pending_runs") if n in names]
    chosen = st.sidebar.multiselect("Runs", names, default=names, key="runs", bind="query-params")
    selected = [r for r in view.runs if r.name in chosen]
    shown = [p for p in view.prefix_runs if p.name in chosen]
    # a tensor file per step names no model: "default"
    models = sorted({r.manifest.model or "default" for r in selected} | {p.model for p in shown})
    if len(models) > 1:
        st.sidebar.warning(f"Selected runs use different models ({', '.join(models)}); showing those of {models[0]}.")
        selected = [r for r in selected if (r.manifest.model or "default") == models[0]]
        shown = [p for p in shown if p.model == models[0]]
    view.selected, view.prefixes, view.model_name = selected, shown, models[0] if models else "default"


def _choose_layer(view: View) -> None:
    """The layer every prefix is read at (they share one model, so one count of layers)."""
    if not view.prefixes:
        return
    layers = list(range(max(p.num_layers for p in view.prefixes)))
    help = "a prefix is a key and a value per layer: the Nearest tokens, Drift and Map pages read this layer's"
    view.layer = _linked_choice("Prefix layer", "layer", layers, "these prefixes", help)


def _choose_step(view: View) -> None:
    steps = sorted({s for r in view.selected for s in r.steps} | {s for p in view.prefixes for s in p.steps})
    if "pending_step" in st.session_state:  # a frame of the animation, applied before the slider exists
        st.session_state["step"] = st.session_state.pop("pending_step")
    if len(steps) <= 1:
        view.step = steps[0] if steps else 0
        return
    view.step = int(st.sidebar.select_slider("Step", options=steps, value=steps[-1], key="step", bind="query-params"))
    if st.sidebar.toggle("Play through training", key="play", help="Steps every view together"):
        with st.sidebar:
            _next_frame(steps, view.step)


@st.fragment(run_every=1.5)
def _next_frame(steps: list[int], step: int) -> None:
    # the body also runs with the whole page; a frame advances only once its time has come
    if time.monotonic() - st.session_state.get("frame_at", 0.0) < 1.4:
        return
    st.session_state["frame_at"] = time.monotonic()
    later = [s for s in steps if s > st.session_state.get("step", step)]
    st.session_state["pending_step"] = later[0] if later else steps[0]  # loops back to the start
    st.rerun()


def _choose_focus(view: View) -> None:
    lengths = [r.manifest.length for r in view.selected] + [p.length for p in view.prefixes]
    positions = max(lengths, default=0)  # no snapshot read per rerun
    options: list[int | str] = ["none", *range(positions)]
    if "pending_highlight" in st.session_state:  # a click in a table or the map, applied before the widget exists
        st.session_state["highlight"] = st.session_state.pop("pending_highlight")
    if st.session_state.get("highlight") not in options:
        st.session_state["highlight"] = "none"
    chosen = st.sidebar.selectbox("Highlight position", options, key="highlight", bind="query-params")
    view.focus = None if chosen == "none" else int(chosen)


def highlight(position: int, focus: int | None) -> None:
    """Highlight ``position`` everywhere (a click in a table or the map), from the next rerun on."""
    if position != focus:
        st.session_state["pending_highlight"] = position
        st.rerun()


def select_runs(names: list[str]) -> None:
    """Show only the runs ``names`` on every page from this rerun on: call it from a widget's callback (a point
    clicked on the Frontier page), which runs before the sidebar is drawn."""
    st.session_state["pending_runs"] = names


def _watch_running(view: View) -> None:
    if not any(r.status == "running" for r in view.selected):
        return
    st.sidebar.info("A selected run is still training; the page refreshes as snapshots arrive.")
    seen, names = state.signature(view.selected), [r.name for r in view.selected]
    with st.sidebar:
        _watch(view.runs_dir, names, seen)


@st.fragment(run_every=5)
def _watch(folder: str, names: list[str], seen: str) -> None:
    fresh = [r for r in find_runs(folder) if r.name in names]
    if state.signature(fresh) != seen:
        st.rerun()
