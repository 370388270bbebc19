"""What the pages share across reruns: cached getters for the model, its index, the maps, drift tables and
reports. Caches are keyed by run signatures, so a run that changes on disk is read again. The folders the server
reads are in :mod:`probe.dashboard.settings`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from probe.core.index import VocabIndex
from probe.core.models import LoadedModel, load_model
from probe.core.tokens import frequency_ranks
from probe.dashboard import prefixes, views
from probe.experiments.demo import comparison_table
from probe.formats.discovery import load_run
from probe.formats.prefix import Part
from probe.formats.run import Run
from probe.readings.drift import drift_table
from probe.readings.projection import MapConfig, VocabMap, find_cached_map, fit_map
from probe.readings.reports import NearestTokenReport

# ---------------------------------------------------------------- cached resources


@st.cache_resource(show_spinner="Loading the model…")
def get_model(name: str) -> LoadedModel:
    return load_model(name, device="cpu")


@st.cache_resource(show_spinner="Building the vocabulary index…")
def get_index(name: str) -> VocabIndex:
    return VocabIndex.for_model(get_model(name))


class Job:
    """A reading computed in a background thread, so that no page waits on it: its ``result`` once ``done``, or
    the ``error`` it raised, in a line."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self.thread.start()

    def _run(self, work: Callable[[], Any]) -> None:
        try:
            self.result = work()
        except Exception as e:  # shown in the page instead of killing the thread silently
            self.error = f"{type(e).__name__}: {' '.join(str(e).split())}"

    @property
    def done(self) -> bool:
        """Whether the work has finished (with a result or an error)."""
        return not self.thread.is_alive()


class MapJob(Job):
    """A UMAP fit running in a background thread."""

    def __init__(self, name: str, config: MapConfig, extra: tuple[int, ...]) -> None:
        super().__init__(lambda: fit_map(get_model(name), get_index(name), config, extra_ids=list(extra)))


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
        return pca_map(name, extra), f"UMAP not fitted ({job.error}); showing PCA."
    note = "UMAP map is being fitted in the background (about a minute the first time); showing PCA."
    return pca_map(name, extra), note


def signature(runs: list[Run]) -> str:
    """Changes whenever one of ``runs`` does: the cache key of everything read from them."""
    return "||".join(r.signature for r in runs)


RunKey = tuple[str, int | None]
"""A run as a cache key: its folder, and the task read of a multitask run (None for any other)."""


def paths(runs: list[Run]) -> tuple[RunKey, ...]:
    """The runs' folders (and tasks), as cache keys."""
    return tuple((str(r.path), r.task) for r in runs)


def reopen(key: RunKey) -> Run:
    """The run a :data:`RunKey` names, read as its task."""
    run = load_run(key[0])
    return run if key[1] is None else run.for_task(key[1])


@st.cache_data(show_spinner=False, max_entries=64)
def get_drift(run: RunKey, run_signature: str, model_name: str, k: int) -> pd.DataFrame:
    return drift_table(reopen(run), get_model(model_name), index=get_index(model_name), k=k)


def drift_of(runs: list[Run], model_name: str, k: int = 5) -> dict[str, pd.DataFrame]:
    """Each run's drift table (cached per run)."""
    return {r.name: get_drift((str(r.path), r.task), r.signature, model_name, k) for r in runs}


@st.cache_data(show_spinner=False, max_entries=32)
def get_comparison(runs: tuple[RunKey, ...], runs_signature: str, model_name: str) -> pd.DataFrame:
    return comparison_table([reopen(r) for r in runs], get_model(model_name), get_index(model_name))


@st.cache_data(show_spinner=False, max_entries=256)
def get_report(run: RunKey, run_signature: str, step: int, model_name: str, k: int) -> NearestTokenReport:
    return views.run_report(reopen(run), step, get_model(model_name), get_index(model_name), k)


def report_of(run: Run, step: int, model_name: str, k: int) -> NearestTokenReport:
    """The nearest-token report of ``run`` (its task's prompt, for a multitask run) at ``step`` (cached)."""
    return get_report((str(run.path), run.task), run.signature, step, model_name, k)


@st.cache_data(show_spinner=False, max_entries=16)
def get_extra(runs: tuple[RunKey, ...], runs_signature: str, model_name: str) -> tuple[int, ...]:
    found = views.neighbour_ids([reopen(r) for r in runs], get_index(model_name), k=5)
    return tuple(int(i) for i in found)


@st.cache_data(show_spinner=False, max_entries=16)
def get_paths(
    runs: tuple[RunKey, ...], runs_signature: str, model_name: str, map_name: str, _vmap: VocabMap
) -> pd.DataFrame:
    display = get_model(model_name).vocabulary.display
    return views.trajectories(_vmap, [reopen(r) for r in runs], get_index(model_name), display=display)


@st.cache_data(show_spinner=False, max_entries=8)
def get_tokens(model_name: str, map_name: str, _vmap: VocabMap) -> pd.DataFrame:
    return views.map_tokens(_vmap, get_model(model_name).vocabulary.display)


@st.cache_data(show_spinner=False, max_entries=8)
def get_landmarks(model_name: str, map_name: str, labels: tuple[str, ...], _vmap: VocabMap) -> pd.DataFrame:
    order: np.ndarray = frequency_ranks(get_model(model_name).vocabulary)
    return views.landmarks(get_tokens(model_name, map_name, _vmap), order, labels=list(labels))


def shared_map(all_runs: list[Run], model_name: str, method: str) -> tuple[VocabMap, str | None]:
    """The map every page shares: fitted on the frequent tokens plus every run's neighbours."""
    return get_map(model_name, method, get_extra(paths(all_runs), signature(all_runs), model_name))


# ---------------------------------------------------------------- prefixes, read per layer beside the page


@st.cache_resource(show_spinner=False, max_entries=64)
def prefix_job(run_path: str, run_signature: str, step: int, model_name: str, k: int, layer: int) -> Job:
    run = prefixes.PrefixRun(Path(run_path))
    return Job(lambda: prefixes.read_layer(run, step, get_model(model_name), k=k, layer=layer))


def prefix_reading(run: prefixes.PrefixRun, step: int, model_name: str, k: int, layer: int) -> Job:
    """The per-layer reading of ``run``'s prefix at ``step`` and ``layer``, computed once beside the page (the
    reference keys and values come from probe's cache once built: a drift or another step reads them free)."""
    return prefix_job(str(run.path), run.signature, step, model_name, k, layer)


@st.cache_resource(show_spinner=False, max_entries=32)
def prefix_drift_job(run_path: str, run_signature: str, step: int, model_name: str, layer: int) -> Job:
    run = prefixes.PrefixRun(Path(run_path))
    return Job(lambda: prefixes.drift_layer(run, step, get_model(model_name), layer=layer))


def prefix_drift_of(run: prefixes.PrefixRun, step: int, model_name: str, layer: int) -> Job:
    """How ``run``'s prefix moved at ``layer`` over its checkpoints up to ``step``, computed once beside the page."""
    return prefix_drift_job(str(run.path), run.signature, step, model_name, layer)


@st.cache_resource(show_spinner=False, max_entries=16)
def prefix_map_job(runs: tuple[tuple[str, str], ...], model_name: str, layer: int, part: Part, method: str) -> Job:
    found = [prefixes.PrefixRun(Path(path)) for path, _ in runs]
    return Job(lambda: prefixes.layer_map(found, get_model(model_name), layer=layer, part=part, method=method))


def prefix_map_of(runs: list[prefixes.PrefixRun], model_name: str, layer: int, part: Part, method: str) -> Job:
    """The map of ``layer``'s keys or values (``part``) with every checkpoint of ``runs`` placed in it, fitted
    beside the page (the layer's reference keys and values come from probe's cache once built)."""
    return prefix_map_job(tuple((str(r.path), r.signature) for r in runs), model_name, layer, part, method)
