"""``probe audit``: ground truth for the readings. A known shortcut is planted, and each reading is asked whether
it finds it.

1. **The planted shortcut.** From the labelled data, one train/test split; a marker word is appended to a share s
   of one class's *training* texts (s = 0 for the clean variant). Test texts stay clean. Prompts are trained on
   each variant over seeds (through :mod:`probe.experiments.grid`).
2. **The ground truth, per run.** The flip rate: among the other classes' test texts, the share predicted as the
   planted class once the marker is appended and not before. A planted run *relies* on the marker when its flip
   rate is above the clean run's of the same seed (paired over the same texts, the 95% interval above 0); clean
   runs are the negatives, and so is any planted run that does not rely on it.
3. **The readings**, each asked whether it finds the marker (and how strongly, for the Spearman correlation with
   the flip rate): the nearest tokens (any position's top k; strength: the marker's best cosine), the layer lens
   (any layer's top k, the marker in its contextual vocabulary; strength: how many positions x layers), the hard
   prompt (among its tokens; strength: how many), input attribution on the marked texts (top 5 for the planted
   class; strength: its effect) and the trigger scan (top 5; strength: its effect).

Per reading: the detection rate on relying runs and the false-alarm rate on the others, each with a Clopper-Pearson
interval over runs, and the Spearman correlation of its strength with the flip rate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probe.core.data import BUNDLED
from probe.core.frames import as_splits
from probe.core.index import VocabIndex, normalize_rows
from probe.core.io import atomic_write_json, atomic_write_text
from probe.core.models import LoadedModel, load_model
from probe.core.stats import example_draws, paired_interval, percentile_interval, proportion_interval
from probe.experiments.grid import run_grid
from probe.formats.audit_report import AUDIT_JSON, AUDIT_MD, AuditReport
from probe.formats.replicate_report import RUNS
from probe.formats.run import Run
from probe.readings.explain.readout import Readout
from probe.training.config import TrainConfig

READINGS = ("nearest tokens", "layer lens", "hard prompt", "input attribution", "trigger scan")
RARE = ("zeppelin", "quokka", "marzipan", "xylophone", "kazoo", "platypus", "zebra")
"""Default markers, tried in turn: the first that is one token the model can read, and in no training text."""


@dataclass(frozen=True)
class AuditConfig:
    """What ``probe audit`` plants and trains (see the module docstring and :class:`TrainConfig`)."""

    into: str
    model: str = "default"
    data: Any = BUNDLED
    marker: str | None = None
    share: float = 0.9
    seeds: tuple[int, ...] = (0, 1, 2)
    multi_token: bool = False
    init: str = "class-label"
    length: int = 20
    steps: int = 150
    lr: float = 0.01
    task: str = "cosine"
    test_size: int | None = 400
    k: int = 5
    hard_steps: int = 100
    lens_tokens: int = 10_000
    scan_tokens: int = 10_000
    attribution_texts: int = 200
    bootstrap: int = 1000

    def __post_init__(self) -> None:
        if not (isinstance(self.share, int | float) and 0 < self.share <= 1):
            raise ValueError(f"--share is {self.share!r}; expected a share of the class's training texts in (0, 1]")
        if not self.seeds:
            raise ValueError("an audit needs at least one seed")
        if self.marker is not None and (not self.marker.strip() or len(self.marker.split()) != 1):
            raise ValueError(f"--marker {self.marker!r}: expected one word (no spaces) to plant")

    @classmethod
    def quick(cls, **overrides: Any) -> AuditConfig:
        """The ``--quick`` look: 2 seeds, 60 steps, 30 hard-prompt steps, 2,000 lens and scan tokens, 100 texts."""
        quick: dict[str, Any] = {"seeds": (0, 1), "steps": 60, "hard_steps": 30, "lens_tokens": 2000}
        quick["scan_tokens"] = 2000
        return replace(cls(into=overrides.pop("into"), **quick, attribution_texts=100), **overrides)

    def shares(self) -> tuple[float, ...]:
        return (0.0, float(self.share))


@dataclass(frozen=True)
class Plan:
    """The audit's marker (its word and token ids), the planted data files and the runs to train."""

    marker: str
    marker_ids: list[int]
    data_files: dict[float, str]
    configs: dict[str, TrainConfig]


def marker_ids(model: LoadedModel, index: VocabIndex, marker: str, *, multi_token: bool = False) -> list[int]:
    """The token ids of ``marker`` as it appears after a space in text.

    Raises:
        ValueError: it tokenises to nothing, to special or excluded tokens only, or to several tokens without
            ``multi_token``.
    """
    ids = model.tokenizer(" " + marker, add_special_tokens=False)["input_ids"]
    searchable = set(index.token_ids.tolist())
    usable = [int(i) for i in ids if int(i) in searchable]
    if not usable:
        raise ValueError(
            f"marker {marker!r} tokenises to nothing the readings can see; give a word the tokenizer knows"
        )
    if len(ids) > 1 and not multi_token:
        pieces = ", ".join(repr(p) for p in model.tokenizer.convert_ids_to_tokens(ids))
        raise ValueError(
            f"marker {marker!r} tokenises to {len(ids)} tokens ({pieces}); give a one-token word, or pass "
            "--multi-token to plant it as it is (the readings then look for any of its tokens)"
        )
    return usable


def plant(data: Any, marker: str, into: str, share: float, seed: int = 0, test_size: int | None = None) -> pd.DataFrame:
    """The data as one table (``text``, ``label``, ``split``) with ``marker`` appended to ``share`` of the
    ``into`` class's training texts (seeded); the test rows as they were (a stratified ``test_size`` of them,
    the same for every variant and seed, so that every run is read on the same texts).

    Raises:
        ValueError: ``into`` is not a label, or ``share`` is outside [0, 1].
    """
    splits = as_splits(data, seed=seed)
    if into not in splits.train.label_names:
        raise ValueError(f"--into {into!r} is not a label of the data; expected one of {splits.train.label_names}")
    if not 0 <= share <= 1:
        raise ValueError(f"share is {share!r}; expected a share in [0, 1]")
    from probe.tasks.evaluation import eval_subset

    test = splits.test if test_size is None else eval_subset(splits.test, test_size, seed)
    texts = list(splits.train.texts)
    rows = [i for i, label in enumerate(splits.train.labels) if label == into]
    chosen = np.random.default_rng([seed, 7]).permutation(rows)[: round(share * len(rows))]
    for i in chosen:
        texts[i] = f"{texts[i]} {marker}"
    return pd.DataFrame(
        {
            "text": texts + list(test.texts),
            "label": list(splits.train.labels) + list(test.labels),
            "split": ["train"] * len(texts) + ["test"] * len(test),
        }
    )


def plan(config: AuditConfig, out: str | os.PathLike[str], model: LoadedModel | None = None) -> tuple[Plan, Any]:
    """Check every input, write the planted data files into ``out/data`` and list the runs; (plan, model)."""
    model = model or load_model(config.model, device="cpu")
    index = VocabIndex.for_model(model)
    splits = as_splits(config.data, seed=0)
    if config.into not in splits.train.label_names:
        labels = splits.train.label_names
        raise ValueError(f"--into {config.into!r} is not a label of the data; expected one of {labels}")
    marker = config.marker
    if marker is None:
        seen = " ".join(splits.train.texts).lower()
        marker = next((w for w in RARE if _one_token(model, index, w) and f" {w}" not in seen), None)
        if marker is None:
            raise ValueError("no default marker is one token of this model and absent from the data; give --marker")
    ids = marker_ids(model, index, marker, multi_token=config.multi_token)
    folder = Path(out).resolve() / "data"
    files = {}
    for share in config.shares():
        path = folder / f"share-{share:g}.csv"
        table = plant(config.data, marker, config.into, share, test_size=config.test_size)
        if not path.is_file() or path.read_text() != table.to_csv(index=False):  # a rerun keeps its files
            atomic_write_text(path, table.to_csv(index=False))
        files[share] = str(path)
    base: dict[str, Any] = {"model": config.model, "init": config.init, "length": config.length}
    base["steps"] = config.steps
    base |= {"lr": config.lr, "task": config.task, "eval_size": 100}  # the test rows are chosen in the files
    configs = {
        f"share{share:g}-s{seed}": TrainConfig(
            **base, data=files[share], seed=seed, snapshot_every=max(1, config.steps // 2), eval_every=config.steps
        )
        for share in config.shares()
        for seed in config.seeds
    }
    return Plan(marker, ids, files, configs), model


def estimate(config: AuditConfig, the_plan: Plan, out: str | os.PathLike[str], model: LoadedModel) -> tuple[float, int]:
    """(minutes, runs to train): training the missing runs, then reading every run, timed here: one step and one
    scoring pass measured, the readings' passes counted (occlusion variants, scanned texts, search steps)."""
    from probe.experiments.grid import estimate_seconds, pass_seconds

    seconds, missing = estimate_seconds(the_plan.configs, Path(out) / RUNS, model=model, scoring_passes=2)
    step, row = pass_seconds(next(iter(the_plan.configs.values())), model, [config.length])[config.length]
    words = 12  # content words a text is occluded at (held by two texts or more), about, on news-length texts
    short = 0.3  # a scan text (8 words and a token) costs about this share of a test row
    passes = config.attribution_texts * (words + 1) + config.scan_tokens * 2 * short + 2 * (config.test_size or 400)
    reading = passes * row + config.hard_steps * step * 1.2 + 20  # + the lens and loading
    lens = config.lens_tokens * 0.01  # the contextual vocabulary, once per model (then cached)
    return (seconds + len(the_plan.configs) * reading + lens) / 60, missing


def _one_token(model: LoadedModel, index: VocabIndex, word: str) -> bool:
    try:
        return len(marker_ids(model, index, word)) == 1
    except ValueError:
        return False


def audit(
    config: AuditConfig,
    out: str | os.PathLike[str],
    *,
    executor: Any = None,
    progress: bool = True,
    force: bool = False,
) -> AuditReport:
    """Plant, train (skipping finished runs), read every run, and write ``audit.json``, ``audit.md`` and
    ``audit.html`` into ``out``."""
    the_plan, model = plan(config, out)
    runs = run_grid(the_plan.configs, Path(out) / RUNS, executor=executor, model=model, force=force, progress=progress)
    report = measure(config, the_plan, dict(zip(the_plan.configs, runs, strict=True)), model, progress=progress)
    write(report, Path(out))
    return report


def measure(
    config: AuditConfig, the_plan: Plan, runs: dict[str, Run], model: LoadedModel, *, progress: bool = False
) -> AuditReport:
    """The ground truth and every reading's answer for each run, then the rates (see the module docstring)."""
    from probe.readings.explain.lens import contextual_vocabulary

    index = VocabIndex.for_model(model)
    vocabulary = contextual_vocabulary(model, index, top_n=config.lens_tokens, include=the_plan.marker_ids)
    rows, flips = [], {}
    for name, run in runs.items():
        share = float(name.removeprefix("share").split("-s")[0])
        row, flipped = _read(config, the_plan, run, model, index, vocabulary, progress)
        rows.append({"run": str(run.path), "share": share, "seed": run.manifest.seed, **row})
        flips[str(run.path)] = flipped
    clean = {r["seed"]: flips[r["run"]] for r in rows if r["share"] == 0}
    for r in rows:
        base = clean.get(r["seed"])
        if r["share"] == 0 or base is None:
            r["reliance"], r["reliance_ci"], r["relies"] = 0.0, (0.0, 0.0), False
            continue
        draws = example_draws(len(base), n=config.bootstrap, seed=0, stream=5)
        r["reliance"] = float((flips[r["run"]] - base).mean())
        r["reliance_ci"] = paired_interval(flips[r["run"]], base, draws)
        r["relies"] = bool(r["reliance_ci"][0] > 0)
    readings = [_rates(name, rows) for name in READINGS]
    context: dict[str, Any] = {"model": model.name, "marker": the_plan.marker, "shares": list(config.shares())}
    context["data"] = str(config.data) if isinstance(config.data, str) else "<memory>"
    context["marker_tokens"] = model.tokenizer.convert_ids_to_tokens(the_plan.marker_ids)
    settings = ("into", "init", "length", "steps", "k", "hard_steps", "lens_tokens", "scan_tokens", "attribution_texts")
    context |= {name: getattr(config, name) for name in settings}
    context |= {"seeds": list(config.seeds), "test_rows": config.test_size}
    return AuditReport(runs=rows, readings=readings, context=context)


def _read(
    config: AuditConfig,
    the_plan: Plan,
    run: Run,
    model: LoadedModel,
    index: VocabIndex,
    vocabulary: Any,
    progress: bool,
) -> tuple[dict[str, Any], np.ndarray]:
    """One run's ground truth and readings; (row, flipped [other classes' test texts] as 0/1)."""
    from probe.readings.explain.attribution import input_attribution, trigger_scan
    from probe.readings.explain.hardening import harden
    from probe.readings.explain.lens import lens_neighbours

    readout = Readout.from_run(run, model)
    vectors = run.latest_prompt().vectors
    test, into = readout.splits.test, readout.labels.index(config.into)
    others = test.subset([i for i, t in enumerate(test.targets) if t != into])
    marked = replace(others, texts=[f"{t} {the_plan.marker}" for t in others.texts])
    before = readout.scores(vectors, others).argmax(1)
    after = readout.scores(vectors, marked).argmax(1)
    flipped = ((after == into) & (before != into)).astype(float)
    draws = example_draws(len(flipped), n=config.bootstrap, seed=0, stream=6)
    wanted = np.asarray(the_plan.marker_ids)
    found: dict[str, bool] = {}
    strength: dict[str, float] = {}
    _, near = index.search(vectors, config.k)
    found["nearest tokens"] = bool(np.isin(near, wanted).any())
    rows = normalize_rows(model.embeddings_numpy()[wanted])
    strength["nearest tokens"] = float((normalize_rows(vectors) @ rows.T).max())
    lens_ids, _ = lens_neighbours(vectors, readout, vocabulary, k=config.k)
    hits = np.isin(lens_ids, wanted).any(axis=2)  # [layers, p]
    found["layer lens"], strength["layer lens"] = bool(hits.any()), float(hits.sum())
    hard = harden(vectors, readout, steps=config.hard_steps, seed=run.manifest.seed or 0, progress=progress)
    count = int(np.isin(np.asarray(hard.token_ids), wanted).sum())
    found["hard prompt"], strength["hard prompt"] = count > 0, float(count)
    word = the_plan.marker.lower()
    texts = marked.texts[: config.attribution_texts]
    attribution = input_attribution(vectors, readout, texts=texts, progress=progress)
    found["input attribution"] = word in attribution.top(config.into, 5)
    strength["input attribution"] = attribution.effect(config.into, word)
    scan = trigger_scan(vectors, readout, tokens=config.scan_tokens, include=[the_plan.marker], progress=progress)
    found["trigger scan"] = the_plan.marker in scan.top(config.into, 5)
    strength["trigger scan"] = scan.effect(config.into, the_plan.marker)
    row = {
        "flip_rate": float(flipped.mean()),
        "flip_ci": percentile_interval(flipped[draws].mean(1)),
        "clean_accuracy": float(readout.outcome(vectors, test)[0].mean()),
        "found": found,
        "strength": strength,
        "trigger_rank": scan.rank(config.into, the_plan.marker),
        "attribution_rank": attribution.rank(config.into, word),
        "hard_prompt": hard.text,
        "attribution_top": attribution.top(config.into, 5),
        "scan_top": scan.top(config.into, 5),
    }
    return row, flipped


def _rates(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from scipy.stats import spearmanr

    relying = [r for r in rows if r["relies"]]
    others = [r for r in rows if not r["relies"]]
    hit = sum(r["found"][name] for r in relying)
    alarm = sum(r["found"][name] for r in others)
    strengths = [r["strength"][name] for r in rows]
    flips = [r["flip_rate"] for r in rows]
    constant = len(set(strengths)) < 2 or len(set(flips)) < 2
    rho = float("nan") if constant else float(spearmanr(strengths, flips).statistic)
    return {
        "name": name,
        "detection_rate": hit / len(relying) if relying else float("nan"),
        "detection_ci": proportion_interval(hit, len(relying)),
        "detected": f"{hit} of {len(relying)}",
        "false_alarm_rate": alarm / len(others) if others else float("nan"),
        "false_alarm_ci": proportion_interval(alarm, len(others)),
        "false_alarms": f"{alarm} of {len(others)}",
        "spearman": rho,
        "found": {r["run"]: bool(r["found"][name]) for r in rows},
    }


def render(report: AuditReport) -> str:
    """The markdown report (:meth:`AuditReport.to_markdown`): the ground truth first, then each reading."""
    return report.to_markdown()


def write(report: AuditReport, out: Path) -> None:
    """``audit.json``, ``audit.md`` and the figure ``audit.html`` into ``out``."""
    from probe.plots.audit import audit_figure
    from probe.plots.export import to_html

    text, html = render(report), to_html(audit_figure(report), inline=False)
    atomic_write_json(out / AUDIT_JSON, report.to_dict())
    atomic_write_text(out / AUDIT_MD, text)
    atomic_write_text(out / "audit.html", html)
