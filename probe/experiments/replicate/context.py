"""What every finding reads, built once from the saved runs, and the reading helpers the findings share: a
pooled estimate with its cluster-bootstrap interval, against the runs' own init and fixed controls."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from probe.core.data import BUNDLED
from probe.core.frames import as_splits
from probe.core.index import VocabIndex
from probe.core.models import LoadedModel, load_model
from probe.core.names import SOFT
from probe.core.stats import cluster_draws, percentile_interval, pooled_mean, verdict
from probe.core.tokens import label_token_ids
from probe.experiments.replicate.record import Finding
from probe.formats.discovery import find_runs
from probe.formats.run import Run
from probe.readings.drift import RunSummary, summarize_run
from probe.readings.measures import control_vectors

SMALLEST_EFFECT = {"coherence": 0.02, "share": 0.05, "accuracy": 0.01}
"""The smallest difference from a control that would count as the claimed effect (see :func:`probe.core.stats.verdict`):
mean pairwise cosine, share of positions, accuracy."""

MOVED_COS = 0.9
"""Positions whose mean cosine to their initial vectors stays above this have barely trained: a neighbour they
keep is their init's, not a learned one."""


def characteristic_words(data: Any, *, per_class: int = 25) -> set[str]:
    """The top TF-IDF words of each class (classes as documents), lower-cased."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    splits = as_splits(data)
    docs: dict[str, list[str]] = {name: [] for name in splits.train.label_names}
    for text, label in zip(splits.train.texts, splits.train.labels, strict=True):
        docs[label].append(text)
    vectorizer = TfidfVectorizer(stop_words="english", lowercase=True, token_pattern=r"(?u)\b[a-zA-Z]{3,}\b")
    matrix = vectorizer.fit_transform([" ".join(v) for v in docs.values()]).toarray()
    vocab = np.array(vectorizer.get_feature_names_out())
    words: set[str] = set()
    for row in matrix:
        words |= set(vocab[np.argsort(-row)[:per_class]].tolist())
    return words


N_CONTROL = 500
"""Control vectors per kind (random-uniform, sampled vocabulary rows, random token sets)."""


@dataclass
class FindingsContext:
    """What every finding reads, built once: the runs' summaries, the labels, and the controls' neighbours."""

    runs: list[Run]
    model: LoadedModel
    index: VocabIndex
    data: Any
    k: int
    bootstrap: int
    readings: list[RunSummary]
    labels: list[str]
    label_ids: dict[str, set[int]]
    all_label_ids: set[int]
    random_ids: np.ndarray  # int64 [N_CONTROL, k] neighbours of the paper's random vectors
    vocab_ids: np.ndarray  # int64 [N_CONTROL, k] neighbours of sampled frequent tokens
    random_rows: np.ndarray  # int64 [N_CONTROL, k] random token sets
    chance: float  # share of random vectors with a label token in their top-k

    def correct(self, reading: RunSummary) -> np.ndarray | None:
        """The run's per-example test correctness (None when it did not record it)."""
        return self._run(reading).final_correct()

    def initial_accuracy(self, reading: RunSummary) -> tuple[float, int] | None:
        """(accuracy, rows) of the run's step-0 evaluation (on its training-time test subset), if it has one."""
        for record in self._run(reading).records():
            if record.get("kind") == "eval" and record.get("step") == 0 and SOFT in record:
                return float(record[SOFT]), int(record.get("rows") or 0)
        return None

    def _run(self, reading: RunSummary) -> Run:
        return next(r for r in self.runs if r.name == reading.run)


def _summaries(
    runs: list[Run], model: LoadedModel, index: VocabIndex, k: int, check_seconds: Callable[[float], None] | None
) -> list[RunSummary]:
    """Each run's summary; the first is timed and ``check_seconds`` given the time all of them take."""
    out = []
    for run in runs:
        started = time.perf_counter()
        out.append(summarize_run(run, model, index=index, k=k, convergence=False))
        if len(out) == 1 and check_seconds is not None:
            check_seconds((time.perf_counter() - started) * len(runs))
    return out


def build_context(
    runs_dir: str | os.PathLike[str],
    *,
    k: int = 5,
    bootstrap: int = 2000,
    data: Any = None,
    model: LoadedModel | None = None,
    check_seconds: Callable[[float], None] | None = None,
) -> FindingsContext:
    """Read the finished runs in ``runs_dir`` and the controls once, for all findings.

    ``check_seconds`` (a budget's check, which raises over it) is given the seconds reading every run will take,
    timed on the first, before the others are read.

    Raises:
        ValueError: no finished runs, runs of different models, or what ``check_seconds`` raises.
    """
    runs = [r for r in find_runs(runs_dir) if r.status == "finished"]
    if not runs:
        raise ValueError(f"'{runs_dir}' has no finished runs; train them with `probe replicate`")
    models = {r.manifest.model or "default" for r in runs}
    if len(models) > 1:
        raise ValueError(f"runs in '{runs_dir}' use different models {sorted(models)}; measure one model at a time")
    model = model or load_model(next(iter(models)), device="cpu")
    index = VocabIndex.for_model(model)
    labels = runs[0].labels
    label_ids = {label: set(label_token_ids(model.tokenizer, label)) for label in labels}
    all_label_ids = set().union(*label_ids.values()) if label_ids else set()
    controls = control_vectors(model, index, N_CONTROL, seed=0)
    _, random_ids = index.search(controls["random-uniform control"], k)
    _, vocab_ids = index.search(controls["sampled-vocab control"], k)
    rng = np.random.default_rng(0)
    return FindingsContext(
        runs=runs,
        model=model,
        index=index,
        data=data or (runs[0].manifest.config or {}).get("data", BUNDLED),
        k=k,
        bootstrap=bootstrap,
        readings=_summaries(runs, model, index, k, check_seconds),
        labels=labels,
        label_ids=label_ids,
        all_label_ids=all_label_ids,
        random_ids=random_ids,
        vocab_ids=vocab_ids,
        random_rows=index.token_ids[rng.integers(0, index.size, size=(N_CONTROL, k))],
        chance=float(np.mean([bool(all_label_ids & set(row.tolist())) for row in random_ids])),
    )


@dataclass
class Reading:
    """A per-position reading of some runs, against their own step-0 snapshots and fixed controls."""

    estimate: float
    interval: tuple[float, float]
    at_init: float
    margins: dict[str, tuple[float, float]]
    travel: float  # mean cosine of the positions to their initial vectors
    runs: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read(
    c: FindingsContext,
    readings: list[RunSummary],
    final: Any,
    initial: Any,
    controls: dict[str, float],
    *,
    against_init: bool = True,
    travel_of: Any = None,
) -> Reading:
    """The pooled estimate of ``final(run)`` over ``readings``, its cluster-bootstrap interval, the same reading
    at init (``initial(run)``), and the intervals of estimate - control that decide a verdict.

    With ``against_init`` the step-0 snapshot is a control: the paired difference (each run against its own init)
    is resampled with the same run draws. ``travel_of(run)`` picks the positions whose travel is reported (all).
    """
    finals = [np.asarray(final(r), float) for r in readings]
    inits = [np.asarray(initial(r), float) for r in readings]
    cells = [(r.init, r.length) for r in readings]
    draws = cluster_draws(finals, cells, n=c.bootstrap, seed=0)
    margins = {name: percentile_interval(draws - value) for name, value in controls.items()}
    if against_init:
        paired = cluster_draws([f - i for f, i in zip(finals, inits, strict=True)], cells, n=c.bootstrap, seed=0)
        margins = {"at init": percentile_interval(paired), **margins}
    travel_of = travel_of or (lambda r: r.cos_to_init)
    travel = np.concatenate([travel_of(r) for r in readings]) if readings else np.array([np.nan])
    return Reading(
        estimate=pooled_mean(finals),
        interval=percentile_interval(draws),
        at_init=pooled_mean(inits),
        margins=margins,
        travel=float(np.mean(travel)),
        runs=len(readings),
    )


def by_init(
    c: FindingsContext,
    readings: list[RunSummary],
    reading_of: Any,
    smallest: float,
) -> dict[str, dict[str, Any]]:
    """``reading_of(readings of one init)`` for each init, with its verdict."""
    out = {}
    for init in sorted({r.init for r in readings}):
        reading = reading_of([r for r in readings if r.init == init])
        out[init] = {**reading.as_dict(), "verdict": verdict(list(reading.margins.values()), smallest)}
    return out


def fmt(value: float, interval: tuple[float, float], pct: bool = False) -> str:
    """An estimate with its interval, as a share or a number."""
    if pct:
        return f"{value:.0%} [{interval[0]:.0%}, {interval[1]:.0%}]"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def make_finding(
    number: int,
    name: str,
    paper: str,
    measured: str,
    reading: Reading,
    smallest: float,
    per_init: dict[str, dict[str, Any]],
    random_control: float | None,
    **extra: Any,
) -> Finding:
    """The :class:`Finding` of a reading: its verdict from the margins, the reading per init, and ``extra``."""
    return Finding(
        number=number,
        name=name,
        paper=paper,
        measured=measured,
        verdict=verdict(list(reading.margins.values()), smallest),
        runs_used=reading.runs,
        estimate=reading.estimate,
        interval=reading.interval,
        init_control=reading.at_init,
        random_control=random_control,
        values={
            "at_init": reading.at_init,
            "margins": reading.margins,
            "travel": reading.travel,
            "smallest_effect": smallest,
            "by_init": per_init,
            **extra,
        },
    )


def init_lines(per_init: dict[str, dict[str, Any]], pct: bool = False) -> str:
    """The per-init clause of a finding's 'measured' text."""

    def show(x: float) -> str:
        return f"{x:.0%}" if pct else f"{x:.3f}"

    return "; by init (learned / at init / cos to init / verdict): " + ", ".join(
        f"{init} {show(v['estimate'])} / {show(v['at_init'])} / {v['travel']:.2f} / {v['verdict']}"
        for init, v in per_init.items()
    )
