"""``probe replicate``: Lester et al. (2021) section 7's claims about learned prompts, as measured numbers.

It trains prompts over inits x lengths x seeds, then measures each claim from the saved runs alone (the final
snapshot, the manifest, the training data), each against a control, with percentile-bootstrap intervals. The
measurement half (:func:`measure_findings`) reads only run folders, so anyone can recompute the table.

Findings:
1. Semantic clusters: the top-5 neighbours of a learned position are similar to each other.
2. Class labels persist: with class-label init, the label is still among its position's neighbours.
3. Labels appear under other inits.
4. Long prompts repeat neighbours (top-1 shared between positions), growing with length.
5. Domain words: the neighbours are the data set's characteristic words.
6. Accuracy by length and init, soft and discretised.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probe.data import BUNDLED, train_test
from probe.drift import RunSummary, summarize_run
from probe.index import VocabIndex
from probe.inits import PAPER_INITS, Scale
from probe.measures import control_vectors, duplicate_top1, neighbor_coherence
from probe.models import LoadedModel, load_model
from probe.reports import FAITHFULNESS_CAVEAT
from probe.runs import Run, find_runs
from probe.stats import (
    Verdict,
    cluster_draws,
    percentile_interval,
    pooled_mean,
    verdict,
)
from probe.tasks import TaskForm
from probe.tokens import label_token_ids
from probe.training import TrainConfig
from probe.util import atomic_write_json, atomic_write_text

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
RUNS = "runs"


@dataclass(frozen=True)
class ReplicateConfig:
    """What ``probe replicate`` trains and measures.

    The default regime makes prompts of every init move: AdamW at lr 0.01 with the random-uniform init scaled to
    the vocabulary's mean norm. Scaling changes no direction, so every cosine reading of the random init (its
    neighbours, the random-vector control) is the paper's; at the paper's [-0.5, 0.5] (norm about 5x the
    vocabulary's here) the same optimiser barely moves it (docs/replicate.md has the numbers).

    Attributes:
        model / data: as in :class:`probe.training.TrainConfig`.
        inits: initialisations to compare.
        lengths: prompt lengths.
        seeds: seeds per (init, length).
        steps: training steps per run.
        k: neighbourhood size for the findings (the paper reads top-5).
        bootstrap: bootstrap resamples for the intervals.
        optimizer / lr / init_scale: the training regime (see :class:`probe.training.TrainConfig`).
        task: the encoder task form, "cosine" or "verbaliser" (:data:`probe.tasks.TASK_FORMS`).
        test_size: score the final figures on a seeded, stratified subset of this many test rows (None: all).
    """

    model: str = "default"
    data: str = BUNDLED
    inits: tuple[str, ...] = tuple(i.value for i in PAPER_INITS)
    lengths: tuple[int, ...] = (1, 5, 20, 100)
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 150
    k: int = 5
    bootstrap: int = 2000
    optimizer: str = "adamw"
    lr: float = 0.01
    init_scale: Scale = "vocab-norm"
    task: TaskForm = "cosine"
    test_size: int | None = None

    @classmethod
    def quick(cls, **overrides: Any) -> ReplicateConfig:
        """The ``--quick`` grid: lengths 5 and 20, 2 seeds, 60 steps, the final figures on 400 test rows."""
        return replace(cls(lengths=(5, 20), seeds=(0, 1), steps=60, test_size=400), **overrides)

    def run_configs(self) -> dict[str, TrainConfig]:
        """Run name -> training config for the whole grid."""
        out = {}
        for init in self.inits:
            for length in self.lengths:
                for seed in self.seeds:
                    out[f"{init}-p{length}-s{seed}"] = TrainConfig(
                        model=self.model,
                        data=self.data,
                        init=init,
                        length=length,
                        seed=seed,
                        steps=self.steps,
                        snapshot_every=max(1, self.steps // 2),
                        eval_every=self.steps,
                        eval_size=100,  # read at step 0 only, as a progress mark: the findings use the final test
                        optimizer=self.optimizer,  # type: ignore[arg-type]
                        lr=self.lr,
                        init_scale=self.init_scale,
                        task=self.task,
                        test_size=self.test_size,
                    )
        return out


def train_grid(
    config: ReplicateConfig, out: str | os.PathLike[str], *, progress: bool = True, force: bool = False
) -> list[Run]:
    """Train (or reuse) every run of the grid under ``out/runs`` (``force``: retrain runs saved with other
    settings, instead of refusing)."""
    from probe.demo import ensure_runs

    model = load_model(config.model, device="cpu")
    return ensure_runs(Path(out) / RUNS, config.run_configs(), model=model, progress=progress, force=force)


def missing_runs(config: ReplicateConfig, out: str | os.PathLike[str]) -> dict[str, TrainConfig]:
    """The grid's runs that ``out/runs`` does not hold finished with the same settings."""
    from probe.runs import is_run_folder, load_run

    missing = {}
    for name, run_config in config.run_configs().items():
        path = Path(out) / RUNS / name
        if is_run_folder(path):
            run = load_run(path)
            if run.status == "finished" and TrainConfig.from_dict(run.manifest.get("config", {})) == run_config:
                continue
        missing[name] = run_config
    return missing


def estimate_seconds(
    config: ReplicateConfig, out: str | os.PathLike[str], *, model: LoadedModel | None = None
) -> tuple[float, int]:
    """(seconds, runs): how long training the grid's missing runs should take on this machine.

    Measured, not guessed: one training step is timed at each prompt length on the real data, and one evaluation
    pass per length on test rows; the grid's steps and evaluated rows are then added up (the zero-shot pass once).
    """
    import torch

    from probe.tasks import make_task, wrap_with_prompt

    missing = missing_runs(config, out)
    if not missing:
        return 0.0, 0
    model = model or load_model(config.model, device="cpu")
    first = next(iter(missing.values()))
    splits = train_test(config.data, seed=first.seed)
    batch = splits.train.texts[: first.batch_size]
    targets = splits.train.targets[: first.batch_size]
    probe_rows = splits.test.texts[:64]
    test_rows = min(len(splits.test), config.test_size or len(splits.test))
    during = min(first.eval_size, test_rows)

    def timed(fn: Any) -> float:
        fn()  # warm: the first pass pays for allocation and kernel choice
        began = time.perf_counter()
        fn()
        return time.perf_counter() - began

    per_length = {}
    for length in sorted({c.length for c in missing.values()}):
        vectors = np.zeros((length, model.dim), dtype=np.float32)
        vectors[:] = model.embeddings_numpy()[: length or 1].mean(0)
        task = make_task(model, wrap_with_prompt(model, vectors), splits.train.label_names, form=config.task)
        step = timed(lambda task=task: task.loss(batch, targets).backward())
        with torch.inference_mode():
            row = timed(lambda task=task: task.score_all(probe_rows)) / len(probe_rows)
        per_length[length] = (step, row)
        zero_row = row
    seconds = test_rows * zero_row  # the zero-shot pass, once per model and data (then cached)
    for run_config in missing.values():
        step, row = per_length[run_config.length]
        seconds += run_config.steps * step + (during + 2 * test_rows) * row + 2.0  # + loading and writing
    return seconds, len(missing)


# ----------------------------------------------------------------------------- findings

SMALLEST_EFFECT = {"coherence": 0.02, "share": 0.05, "accuracy": 0.01}
"""The smallest difference from a control that would count as the claimed effect (see :func:`probe.stats.verdict`):
mean pairwise cosine, share of positions, accuracy."""

MOVED_COS = 0.9
"""Positions whose mean cosine to their initial vectors stays above this have barely trained: a neighbour they
keep is their init's, not a learned one."""


@dataclass
class Finding:
    """One finding as typed numbers: the estimate, its interval, its controls, the verdict, the runs it read.

    ``values`` holds the rest: ``at_init`` (the same reading on each run's step-0 snapshot), ``margins`` (the
    intervals of estimate - control that decide the verdict), ``by_init`` (the reading per init, with how far
    the positions travelled), and finding-specific numbers.
    """

    number: int
    name: str
    paper: str
    measured: str
    verdict: Verdict
    runs_used: int
    estimate: float
    interval: tuple[float, float]
    init_control: float | None
    random_control: float | None
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def holds(self) -> str:
        """The verdict (the field's earlier name)."""
        return self.verdict


def characteristic_words(data: str, *, per_class: int = 25) -> set[str]:
    """The top TF-IDF words of each class (classes as documents), lower-cased."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    splits = train_test(data)
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
    data: str
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
            if record.get("kind") == "eval" and record.get("step") == 0 and "accuracy" in record:
                return float(record["accuracy"]), int(record.get("rows") or 0)
        return None

    def _run(self, reading: RunSummary) -> Run:
        return next(r for r in self.runs if r.name == reading.run)


def build_context(
    runs_dir: str | os.PathLike[str],
    *,
    k: int = 5,
    bootstrap: int = 2000,
    data: str | None = None,
    model: LoadedModel | None = None,
) -> FindingsContext:
    """Read the finished runs in ``runs_dir`` and the controls once, for all findings.

    Raises:
        ValueError: no finished runs, or runs of different models.
    """
    runs = [r for r in find_runs(runs_dir) if r.status == "finished"]
    if not runs:
        raise ValueError(f"'{runs_dir}' has no finished runs; train them with `probe replicate`")
    models = {r.manifest["model"] for r in runs}
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
        data=data or runs[0].manifest.get("config", {}).get("data", BUNDLED),
        k=k,
        bootstrap=bootstrap,
        readings=[summarize_run(run, model, index=index, k=k, convergence=False) for run in runs],
        labels=labels,
        label_ids=label_ids,
        all_label_ids=all_label_ids,
        random_ids=random_ids,
        vocab_ids=vocab_ids,
        random_rows=index.token_ids[rng.integers(0, index.size, size=(N_CONTROL, k))],
        chance=float(np.mean([bool(all_label_ids & set(row.tolist())) for row in random_ids])),
    )


@dataclass
class _Reading:
    """A per-position reading of some runs, against their own step-0 snapshots and fixed controls."""

    estimate: float
    interval: tuple[float, float]
    at_init: float
    margins: dict[str, tuple[float, float]]
    travel: float  # mean cosine of the positions to their initial vectors
    runs: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _read(
    c: FindingsContext,
    readings: list[RunSummary],
    final: Any,
    initial: Any,
    controls: dict[str, float],
    *,
    against_init: bool = True,
    travel_of: Any = None,
) -> _Reading:
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
    return _Reading(
        estimate=pooled_mean(finals),
        interval=percentile_interval(draws),
        at_init=pooled_mean(inits),
        margins=margins,
        travel=float(np.mean(travel)),
        runs=len(readings),
    )


def _by_init(
    c: FindingsContext,
    readings: list[RunSummary],
    read: Any,
    smallest: float,
) -> dict[str, dict[str, Any]]:
    """``read(readings of one init)`` for each init, with its verdict."""
    out = {}
    for init in sorted({r.init for r in readings}):
        reading = read([r for r in readings if r.init == init])
        out[init] = {**reading.as_dict(), "verdict": verdict(list(reading.margins.values()), smallest)}
    return out


def _fmt(value: float, interval: tuple[float, float], pct: bool = False) -> str:
    if pct:
        return f"{value:.0%} [{interval[0]:.0%}, {interval[1]:.0%}]"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _finding(
    number: int,
    name: str,
    paper: str,
    measured: str,
    reading: _Reading,
    smallest: float,
    by_init: dict[str, dict[str, Any]],
    random_control: float | None,
    **extra: Any,
) -> Finding:
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
            "by_init": by_init,
            **extra,
        },
    )


def _init_lines(by_init: dict[str, dict[str, Any]], pct: bool = False) -> str:
    def show(x: float) -> str:
        return f"{x:.0%}" if pct else f"{x:.3f}"

    return "; by init (learned / at init / cos to init / verdict): " + ", ".join(
        f"{init} {show(v['estimate'])} / {show(v['at_init'])} / {v['travel']:.2f} / {v['verdict']}"
        for init, v in by_init.items()
    )


def semantic_clusters(c: FindingsContext) -> Finding:
    """1. Semantic clusters: learned top-k neighbourhoods against their own init and the random-vector control."""
    control_random = float(neighbor_coherence(c.index, c.random_ids).mean())
    control_rows = float(neighbor_coherence(c.index, c.random_rows).mean())
    ceiling = float(neighbor_coherence(c.index, c.vocab_ids).mean())  # a real token's own top-k

    def read(readings: list[RunSummary]) -> _Reading:
        return _read(c, readings, lambda r: r.coherence, lambda r: r.init_coherence, {"random vectors": control_random})

    reading = read(c.readings)
    smallest = SMALLEST_EFFECT["coherence"]
    by_init = _by_init(c, c.readings, read, smallest)
    return _finding(
        1,
        "Semantic clusters",
        "the top-5 neighbours of learned tokens form tight semantic clusters; random vectors show none",
        f"mean pairwise cosine of top-{c.k}: learned {_fmt(reading.estimate, reading.interval)}, the same runs at "
        f"init {reading.at_init:.3f}, random-vector control {control_random:.3f}, {c.k} random tokens "
        f"{control_rows:.3f}, a frequent token's own neighbourhood {ceiling:.3f}" + _init_lines(by_init),
        reading,
        smallest,
        by_init,
        control_random,
        control_rows=control_rows,
        vocab_neighbourhoods=ceiling,
    )


def labels_persist(c: FindingsContext) -> Finding | None:
    """2. Class labels persist: class-label positions keep their own label in the top-k, after moving."""
    readings = [r for r in c.readings if r.init == "class-label"]
    if not readings:
        return None

    def kept(ids: np.ndarray, length: int) -> np.ndarray:
        return np.array(
            [float(bool(c.label_ids[label] & set(ids[i].tolist()))) for i, label in enumerate(c.labels[:length])]
        )

    reading = _read(
        c,
        readings,
        lambda r: kept(r.final_ids, r.length),
        lambda r: kept(r.init_ids, r.length),
        {"random vectors": c.chance},
        against_init=False,  # at init every label position holds its label: the ceiling, not a control to beat
        travel_of=lambda r: r.cos_to_init[: len(c.labels)],  # the label positions only
    )
    smallest = SMALLEST_EFFECT["share"]
    moved = reading.travel < MOVED_COS
    decided = verdict(list(reading.margins.values()), smallest)
    finding = _finding(
        2,
        "Class labels persist",
        "with class-label init, the class label often stays the nearest neighbour after training",
        f"{_fmt(reading.estimate, reading.interval, pct=True)} of label positions keep their own label in the "
        f"top-{c.k} (at init {reading.at_init:.0%}; random vectors have any label {c.chance:.0%}); the label "
        f"positions' mean cosine to their init is {reading.travel:.2f}"
        + ("" if moved else f", above {MOVED_COS}: they barely trained, so what they keep is their init"),
        reading,
        smallest,
        {"class-label": {**reading.as_dict(), "verdict": decided if moved else "unclear"}},
        c.chance,
        positions=int(sum(min(r.length, len(c.labels)) for r in readings)),
        moved=moved,
    )
    if not moved and finding.verdict == "yes":
        finding.verdict = "unclear"
    return finding


def labels_elsewhere(c: FindingsContext) -> Finding | None:
    """3. Labels appear under other inits, beyond where those inits started."""
    readings = [r for r in c.readings if r.init != "class-label"]
    if not readings:
        return None

    def has_label(ids: np.ndarray) -> np.ndarray:
        return np.array([float(bool(c.all_label_ids & set(row.tolist()))) for row in ids])

    vocab_chance = float(has_label(c.vocab_ids).mean())

    def read(subset: list[RunSummary]) -> _Reading:
        return _read(
            c,
            subset,
            lambda r: has_label(r.final_ids),
            lambda r: has_label(r.init_ids),
            {"random vectors": c.chance, "vocabulary rows": vocab_chance},
        )

    reading = read(readings)
    smallest = SMALLEST_EFFECT["share"]
    by_init = _by_init(c, readings, read, smallest)
    return _finding(
        3,
        "Labels appear under other inits",
        "class labels also appear among the neighbours of prompts not initialised from them",
        f"{_fmt(reading.estimate, reading.interval, pct=True)} of positions have a label token in the top-{c.k} "
        f"(the same runs at init {reading.at_init:.0%}; random vectors {c.chance:.0%}, sampled vocabulary rows "
        f"{vocab_chance:.0%})" + _init_lines(by_init, pct=True),
        reading,
        smallest,
        by_init,
        c.chance,
        control_vocab=vocab_chance,
    )


def _duplicates(ids: np.ndarray) -> np.ndarray:
    return np.array([float(bool(d)) for d in duplicate_top1(ids[:, 0])])


def repeated_neighbours(c: FindingsContext) -> Finding | None:
    """4. Long prompts repeat neighbours: shared top-1 at the longest length, against init and random vectors."""
    readings = [r for r in c.readings if r.length >= 2]
    if not readings:
        return None
    longest = max(r.length for r in readings)
    # the paper's random vectors, in prompts of the same length: how often a top-1 repeats by chance
    groups = [c.random_ids[i : i + longest] for i in range(0, len(c.random_ids) - longest + 1, longest)]
    random_dup = float(np.mean([_duplicates(g).mean() for g in groups])) if groups else float("nan")
    controls = {"random vectors": random_dup} if np.isfinite(random_dup) else {}

    def read(subset: list[RunSummary]) -> _Reading:
        return _read(c, subset, lambda r: _duplicates(r.final_ids), lambda r: _duplicates(r.init_ids), controls)

    long_runs = [r for r in readings if r.length == longest]
    reading = read(long_runs)
    smallest = SMALLEST_EFFECT["share"]
    by_init = _by_init(c, long_runs, read, smallest)
    by_length = [
        {
            "length": length,
            "final": pooled_mean([_duplicates(r.final_ids) for r in readings if r.length == length]),
            "initial": pooled_mean([_duplicates(r.init_ids) for r in readings if r.length == length]),
        }
        for length in sorted({r.length for r in readings})
    ]
    finals = [row["final"] for row in by_length]
    grows = len(finals) > 1 and all(b >= a for a, b in itertools.pairwise(finals)) and finals[-1] > finals[0]
    return _finding(
        4,
        "Long prompts repeat neighbours",
        "with long prompts, several positions share the same nearest neighbour",
        "share of positions whose top-1 is shared, by length: "
        + ", ".join(f"p={row['length']}: {row['final']:.0%} (at init {row['initial']:.0%})" for row in by_length)
        + f"; at p={longest}: {_fmt(reading.estimate, reading.interval, pct=True)}, random vectors "
        f"{random_dup:.0%}; grows with length: {'yes' if grows else 'no'}" + _init_lines(by_init, pct=True),
        reading,
        smallest,
        by_init,
        random_dup,
        by_length=by_length,
        longest=longest,
        grows_with_length=grows,
    )


def domain_words(c: FindingsContext) -> Finding:
    """5. Domain words: share of neighbours that are the data's characteristic words, beyond init and chance."""
    words = characteristic_words(c.data)
    display = c.model.vocabulary

    def domain_share(ids: np.ndarray) -> np.ndarray:
        return np.array([np.mean([display.surface(int(t)) in words for t in row]) for row in ids])

    control = float(domain_share(c.vocab_ids).mean())

    def read(subset: list[RunSummary]) -> _Reading:
        return _read(
            c,
            subset,
            lambda r: domain_share(r.final_ids),
            lambda r: domain_share(r.init_ids),
            {"vocabulary rows": control},
        )

    reading = read(c.readings)
    smallest = SMALLEST_EFFECT["share"] / 2
    by_init = _by_init(c, c.readings, read, smallest)
    counter: Counter[str] = Counter()
    for r in c.readings:
        counter.update({display.surface(int(t)) for t in r.final_ids.ravel()} & words)
    recurring = [(w, n) for w, n in counter.most_common() if n >= 2][:15]
    return _finding(
        5,
        "Domain words",
        "neighbours include domain words of the task (e.g. 'science', 'technology' for topic data)",
        f"{_fmt(reading.estimate, reading.interval, pct=True)} of top-{c.k} neighbours are characteristic words "
        f"of the data (top TF-IDF per class); the same runs at init {reading.at_init:.0%}, sampled vocabulary "
        f"rows {control:.0%}. Domain words recurring across runs: "
        + (", ".join(f"{w} ({n})" for w, n in recurring[:10]) or "none")
        + _init_lines(by_init, pct=True),
        reading,
        smallest,
        by_init,
        None,
        control_vocab=control,
        recurring=recurring,
        characteristic_words=sorted(words),
    )


def accuracy_by_length(c: FindingsContext) -> tuple[Finding, pd.DataFrame]:
    """6. Accuracy by length and init, soft and discretised; class-label against random-uniform, with intervals
    that resample seeds within each cell and the test examples."""
    readings = [r for r in c.readings if r.accuracy is not None]
    bits = [c.correct(r) for r in readings]
    aligned = bool(bits) and all(b is not None for b in bits) and len({b.size for b in bits if b is not None}) == 1
    values = [
        b.astype(float) if aligned and b is not None else np.array([r.accuracy])
        for r, b in zip(readings, bits, strict=True)
    ]
    cells = [(r.init, r.length) for r in readings]

    def draws_of(keep: Any) -> np.ndarray:
        chosen = [i for i, r in enumerate(readings) if keep(r)]
        return cluster_draws(
            [values[i] for i in chosen], [cells[i] for i in chosen], n=c.bootstrap, seed=0, aligned=aligned
        )

    def mean_of(keep: Any) -> float:
        return pooled_mean([values[i] for i, r in enumerate(readings) if keep(r)], aligned=aligned)

    rows = []
    for init, length in sorted(set(cells)):
        cell = [r for r in readings if (r.init, r.length) == (init, length)]
        interval = percentile_interval(draws_of(lambda r, i=init, p=length: (r.init, r.length) == (i, p)))
        rows.append(
            {
                "init": init,
                "length": length,
                "accuracy": mean_of(lambda r, i=init, p=length: (r.init, r.length) == (i, p)),
                "low": interval[0],
                "high": interval[1],
                "discrete": float(np.mean([r.discrete_accuracy for r in cell if r.discrete_accuracy is not None]))
                if any(r.discrete_accuracy is not None for r in cell)
                else float("nan"),
                "zero_shot": float(np.mean([r.zero_shot for r in cell if r.zero_shot is not None]))
                if any(r.zero_shot is not None for r in cell)
                else float("nan"),
                "cos_to_init": float(np.mean([r.mean_cos_final_to_init for r in cell])),
                "seeds": len(cell),
            }
        )
    table = pd.DataFrame(rows)
    inits = {r.init for r in readings}
    lengths = sorted({r.length for r in readings})
    smallest = SMALLEST_EFFECT["accuracy"]
    contrasts: dict[str, dict[str, Any]] = {}
    if {"class-label", "random-uniform"} <= inits:
        diff = draws_of(lambda r: r.init == "class-label") - draws_of(lambda r: r.init == "random-uniform")
        estimate = mean_of(lambda r: r.init == "class-label") - mean_of(lambda r: r.init == "random-uniform")
        contrasts["class-label - random-uniform"] = {"estimate": estimate, "interval": percentile_interval(diff)}
    if len(lengths) > 1:
        diff = draws_of(lambda r: r.length == lengths[-1]) - draws_of(lambda r: r.length == lengths[0])
        estimate = mean_of(lambda r: r.length == lengths[-1]) - mean_of(lambda r: r.length == lengths[0])
        contrasts[f"p={lengths[-1]} - p={lengths[0]}"] = {"estimate": estimate, "interval": percentile_interval(diff)}
    for contrast in contrasts.values():
        contrast["verdict"] = verdict([contrast["interval"]], smallest)
    first = next(iter(contrasts.values()), None)
    headline_estimate = float(first["estimate"]) if first else float("nan")
    headline_interval: tuple[float, float] = first["interval"] if first else (float("nan"), float("nan"))
    verdicts = [v["verdict"] for v in contrasts.values()]
    initial = [c.initial_accuracy(r) for r in readings]
    at_init = float(np.mean([a for a, _ in filter(None, initial)])) if any(initial) else float("nan")
    gaps = [(r.accuracy or 0.0) - r.discrete_accuracy for r in readings if r.discrete_accuracy is not None]
    gap = float(np.mean(gaps)) if gaps else float("nan")
    zero = float(np.mean([r.zero_shot for r in readings if r.zero_shot is not None])) if readings else float("nan")
    finding = Finding(
        number=6,
        name="Accuracy by length and init",
        paper="longer prompts and class-label init help (at small scale); random-uniform init is worst",
        measured=", ".join(
            f"{name}: {v['estimate']:+.3f} [{v['interval'][0]:+.3f}, {v['interval'][1]:+.3f}] ({v['verdict']})"
            for name, v in contrasts.items()
        )
        + f"; mean accuracy {np.mean([r.accuracy for r in readings]) if readings else float('nan'):.3f}, at init "
        f"{at_init:.3f} (step-0 evaluation rows), zero-shot {zero:.3f}; mean gap soft - discretised {gap:+.3f}",
        # the claim is a conjunction: refuted when one part is, confirmed only when every part is
        verdict="no" if "no" in verdicts else ("yes" if verdicts and all(v == "yes" for v in verdicts) else "unclear"),
        runs_used=len(readings),
        estimate=headline_estimate,
        interval=headline_interval,
        init_control=None,
        random_control=None,
        values={
            "at_init": at_init,  # the prompts as initialised, on each run's step-0 evaluation rows
            "at_init_rows": sorted({rows for _, rows in filter(None, initial)}),
            "contrasts": contrasts,
            "gap_soft_minus_discrete": gap,
            "zero_shot": zero,
            "examples_resampled": aligned,
            "smallest_effect": smallest,
        },
    )
    return finding, table


def measure_findings(
    runs_dir: str | os.PathLike[str],
    *,
    k: int = 5,
    bootstrap: int = 2000,
    data: str | None = None,
    model: LoadedModel | None = None,
) -> tuple[list[Finding], pd.DataFrame, dict[str, Any]]:
    """Measure the six findings from the finished runs in ``runs_dir`` alone.

    Returns:
        (findings, accuracy table by init and length, context: model, data, task, regime, seeds, settings,
        controls, resampling, travel by init).

    Raises:
        ValueError: no finished runs, or runs of different models.
    """
    c = build_context(runs_dir, k=k, bootstrap=bootstrap, data=data, model=model)
    findings = [semantic_clusters(c), labels_persist(c), labels_elsewhere(c), repeated_neighbours(c), domain_words(c)]
    accuracy, table = accuracy_by_length(c)
    found = [f for f in [*findings, accuracy] if f is not None]
    readings, runs = c.readings, c.runs
    configs = [run.manifest.get("config", {}) for run in runs]

    def setting(key: str, default: Any = None) -> list[Any]:
        return sorted({str(cfg.get(key, default)) for cfg in configs})

    context = {
        "model": c.model.name,
        "data": c.data,
        "task": setting("task", "cosine"),
        "runs": len(readings),
        "seeds": sorted({r.seed for r in readings if r.seed is not None}),
        "inits": sorted({r.init for r in readings}),
        "lengths": sorted({r.length for r in readings}),
        "steps": sorted({int(run.manifest.get("steps", 0)) for run in runs}),
        "regime": {
            "optimizer": setting("optimizer", "adamw"),
            "lr": setting("lr", 0.01),
            "init_scale": setting("init_scale", 0.5),
            "test_size": setting("test_size", None),
        },
        "travel": {
            init: float(np.mean(np.concatenate([r.cos_to_init for r in readings if r.init == init])))
            for init in sorted({r.init for r in readings})
        },
        "k": c.k,
        "bootstrap": c.bootstrap,
        "resampling": (
            f"cluster bootstrap ({c.bootstrap} resamples, seed 0): whole runs are drawn with replacement within "
            "each init x length cell (seeds are the clusters; a run's positions stay together; a cell with one "
            "seed adds no between-run spread)"
            + (
                "; accuracy intervals also resample the test examples, one draw shared by all runs"
                if accuracy.values.get("examples_resampled")
                else "; accuracy intervals resample runs only (the runs did not record per-example results)"
            )
        ),
        "controls": f"{N_CONTROL} random-uniform [-0.5, 0.5] vectors and {N_CONTROL} rows of the 5,000 most "
        "frequent tokens, seed 0; and every run's own step-0 snapshot (at init)",
    }
    return found, table, context


def _show(x: float | None, pct: bool) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x:.0%}" if pct else f"{x:.3f}"


PERCENT_FINDINGS = {2, 3, 4, 5}
"""Findings whose numbers are shares of positions (shown as percentages)."""


def render(findings: list[Finding], table: pd.DataFrame, context: dict[str, Any]) -> str:
    """The markdown report (measuring is done: this only formats)."""
    regime = context.get("regime", {})
    lines = [
        "# Lester et al. (2021), section 7, measured",
        "",
        f"Model `{context['model']}`, data `{context['data']}`, task form {', '.join(context.get('task', []))}; "
        f"{context['runs']} runs: inits {', '.join(context['inits'])} x lengths {context['lengths']} x seeds "
        f"{context['seeds']}, {context['steps']} steps, optimizer {', '.join(regime.get('optimizer', []))} at lr "
        f"{', '.join(regime.get('lr', []))}, random-uniform scale {', '.join(regime.get('init_scale', []))}. "
        f"Neighbourhoods of k={context['k']} from the final snapshots. Intervals are 95%: "
        f"{context.get('resampling', '')}. Controls: {context['controls']}.",
        "",
        "How far the prompts moved (mean cosine of each position to its initial vector; 1 = did not move): "
        + ", ".join(f"{init} {cos:.2f}" for init, cos in context.get("travel", {}).items())
        + ".",
        "",
        'A verdict is "yes" only when every interval of (learned - control) is above 0, "no" only when one lies '
        'below the smallest effect that would count, and "unclear" otherwise. A finding holds for prompt tuning '
        "only beyond its init control: the same reading on each run's own step-0 snapshot.",
        "",
        "| # | finding | paper says | learned [95% CI] | at init | random control | verdict | runs |",
        "|---:|---|---|---|---:|---:|---|---:|",
    ]
    for f in findings:
        pct = f.number in PERCENT_FINDINGS
        learned = (
            f"{f.estimate:+.3f} [{f.interval[0]:+.3f}, {f.interval[1]:+.3f}]"
            if f.number == 6
            else f"{_fmt(f.estimate, f.interval, pct)}"
        )
        lines.append(
            f"| {f.number} | {f.name} | {f.paper} | {learned} | {_show(f.init_control, pct)} | "
            f"{_show(f.random_control, pct)} | {f.verdict} | {f.runs_used} |"
        )
    lines += ["", "## What was measured", ""]
    lines += [f"{f.number}. **{f.name}**: {f.measured}." for f in findings]
    lines += [
        "",
        "## Accuracy by init and length (test split)",
        "",
        table.to_markdown(index=False, floatfmt=".3f") if not table.empty else "(no runs)",
        "",
        "## Caveats",
        "",
        "- The default model is a 22M-parameter sentence encoder (all-MiniLM-L6-v2), not T5-XXL generating labels; "
        "the paper's claims are about much larger models. With the 'cosine' task form it classifies by cosine to "
        "label-name embeddings; the 'verbaliser' form makes an output position produce the label token.",
        f"- {FAITHFULNESS_CAVEAT}",
        "",
    ]
    return "\n".join(lines)


def replicate(
    config: ReplicateConfig, out: str | os.PathLike[str], *, progress: bool = True, force: bool = False
) -> str:
    """Train the grid, measure the findings, and write ``report.md`` and ``report.json`` into ``out``."""
    started = time.time()
    train_grid(config, out, progress=progress, force=force)
    return write_report(config, out, started=started)


def write_report(config: ReplicateConfig, out: str | os.PathLike[str], *, started: float | None = None) -> str:
    """Measure the findings from ``out/runs`` and write ``report.md``, ``report.json`` and the figures."""
    started = started if started is not None else time.time()
    findings, table, context = measure_findings(
        Path(out) / RUNS, k=config.k, bootstrap=config.bootstrap, data=config.data
    )
    context["config"] = dataclasses.asdict(config)
    context["seconds"] = round(time.time() - started, 1)
    text = render(findings, table, context)
    atomic_write_text(Path(out) / REPORT_MD, text)
    atomic_write_json(
        Path(out) / REPORT_JSON,
        json.loads(
            json.dumps(
                {
                    "context": context,
                    "findings": [dataclasses.asdict(f) for f in findings],
                    "accuracy": table.to_dict("records"),
                },
                default=_jsonable,
            )
        ),
    )
    _figures(table, findings, Path(out))
    return text


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _figures(table: pd.DataFrame, findings: list[Finding], out: Path) -> None:
    import plotly.express as px

    fig = px.line(
        table,
        x="length",
        y="accuracy",
        color="init",
        markers=True,
        log_x=True,
        title="Test accuracy by prompt length and init",
    )
    atomic_write_text(out / "accuracy.html", fig.to_html(include_plotlyjs="cdn"))
    dup = next((f for f in findings if f.number == 4), None)
    if dup:
        frame = pd.DataFrame(dup.values["by_length"])
        fig = px.bar(
            frame,
            x="length",
            y=["initial", "final"],
            barmode="group",
            title="Share of positions whose top-1 token repeats elsewhere",
        )
        atomic_write_text(out / "duplicates.html", fig.to_html(include_plotlyjs="cdn"))
