"""``probe audit``'s measurement (see the package): each run's flip rate against the clean run of its seed, every
reading asked whether it finds the marker, and per reading the detection and false-alarm rates with Clopper-Pearson
intervals over runs and the Spearman correlation of its strength with the flip rate."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from probe.core.index import VocabIndex, normalize_rows
from probe.core.models import LoadedModel
from probe.core.stats import example_draws, paired_interval, percentile_interval, proportion_interval
from probe.experiments.audit.config import AuditConfig
from probe.experiments.audit.record import READINGS, AuditReport
from probe.experiments.sweep import Plan
from probe.formats.run import Run
from probe.readings.explain.readout import Readout


@dataclass(frozen=True)
class Marker:
    """The planted word and its token ids (what the readings look for)."""

    word: str
    ids: list[int]


def measure(
    plan: Plan[AuditConfig], runs: dict[str, Run], model: LoadedModel, *, progress: bool = False
) -> AuditReport:
    """The ground truth and every reading's answer for each run, then the rates (see the module docstring)."""
    from probe.readings.explain.lens import contextual_vocabulary

    config, marker = plan.settings, Marker(plan.extra["marker"], plan.extra["marker_ids"])
    index = VocabIndex.for_model(model)
    vocabulary = contextual_vocabulary(model, index, top_n=config.lens_tokens, include=marker.ids)
    rows, flips = [], {}
    for name, run in runs.items():
        row, flipped = _read(config, marker, run, model, index, vocabulary, progress)
        rows.append({"run": str(run.path), "share": share_of(name), "seed": run.manifest.seed, **row})
        rows[-1] |= {"steps": run.steps[-1], "stopped": plan.extra.get("stopped", "")}
        flips[str(run.path)] = flipped
    for r, (reliance, interval, relies) in zip(rows, reliance_of(config, rows, flips), strict=True):
        r["reliance"], r["reliance_ci"], r["relies"] = reliance, interval, relies
    readings = [_rates(name, rows) for name in READINGS]
    context = config.context(model) | {"marker": marker.word, "shares": list(config.shares())}
    context |= {"max_steps": config.most_steps, "rounds": plan.extra.get("rounds", [])}
    context["marker_tokens"] = model.tokenizer.convert_ids_to_tokens(marker.ids)
    settings = ["into", "lr", "share", "min_effect", "k", "hard_steps", "lens_tokens", "scan_tokens"]
    context |= {name: getattr(config, name) for name in [*settings, "attribution_texts"]}
    context["test_rows"] = config.test_size
    return AuditReport(runs=rows, readings=readings, context=context)


def share_of(name: str) -> float:
    """The share of a run's name (``share0.9-s1``: 0.9)."""
    return float(name.removeprefix("share").split("-s")[0])


def reliance_of(
    config: AuditConfig, rows: list[dict[str, Any]], flips: dict[str, np.ndarray]
) -> list[tuple[float, tuple[float, float], bool]]:
    """Per row (``run``, ``share``, ``seed``): its flip rate minus the clean run's of its seed over the same texts,
    the paired 95% interval, and whether the lower bound reaches the minimum effect (clean runs: 0, never)."""
    clean = {r["seed"]: flips[r["run"]] for r in rows if r["share"] == 0}
    out = []
    for r in rows:
        base = clean.get(r["seed"])
        if r["share"] == 0 or base is None:
            out.append((0.0, (0.0, 0.0), False))
            continue
        draws = example_draws(len(base), n=config.bootstrap, seed=0, stream=5)
        interval = paired_interval(flips[r["run"]], base, draws)
        out.append((float((flips[r["run"]] - base).mean()), interval, bool(interval[0] >= config.min_effect)))
    return out


def flip_bits(config: AuditConfig, marker: Marker, run: Run, model: LoadedModel) -> np.ndarray:
    """The ground truth of one run, on its final snapshot: per test text of the other classes, 1 when appending
    the marker turns its prediction into the planted class (and it was not before), else 0."""
    return _flips(config, marker, Readout.from_run(run, model), run.latest_prompt().vectors)


def _flips(config: AuditConfig, marker: Marker, readout: Readout, vectors: np.ndarray) -> np.ndarray:
    test, into = readout.splits.test, readout.labels.index(config.into)
    others = test.subset([i for i, t in enumerate(test.targets) if t != into])
    marked = replace(others, texts=[f"{t} {marker.word}" for t in others.texts])
    before = readout.scores(vectors, others).argmax(1)
    after = readout.scores(vectors, marked).argmax(1)
    return ((after == into) & (before != into)).astype(float)


def _read(
    config: AuditConfig,
    marker: Marker,
    run: Run,
    model: LoadedModel,
    index: VocabIndex,
    vocabulary: Any,
    progress: bool,
) -> tuple[dict[str, Any], np.ndarray]:
    """One run's ground truth and readings; (row, flipped [other classes' test texts] as 0/1)."""
    from probe.readings.explain.attribution import input_attribution
    from probe.readings.explain.hardening import harden
    from probe.readings.explain.lens import lens_neighbours
    from probe.readings.explain.triggers import trigger_scan

    readout = Readout.from_run(run, model)
    vectors = run.latest_prompt().vectors
    test, into = readout.splits.test, readout.labels.index(config.into)
    others = test.subset([i for i, t in enumerate(test.targets) if t != into])
    marked = replace(others, texts=[f"{t} {marker.word}" for t in others.texts])
    flipped = _flips(config, marker, readout, vectors)
    draws = example_draws(len(flipped), n=config.bootstrap, seed=0, stream=6)
    wanted = np.asarray(marker.ids)
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
    word = marker.word.lower()
    texts = marked.texts[: config.attribution_texts]
    attribution = input_attribution(vectors, readout, texts=texts, progress=progress)
    found["input attribution"] = word in attribution.top(config.into, 5)
    strength["input attribution"] = attribution.effect(config.into, word)
    scan = trigger_scan(vectors, readout, tokens=config.scan_tokens, include=[marker.word], progress=progress)
    found["trigger scan"] = marker.word in scan.top(config.into, 5)
    strength["trigger scan"] = scan.effect(config.into, marker.word)
    row = {
        "flip_rate": float(flipped.mean()),
        "flip_ci": percentile_interval(flipped[draws].mean(1)),
        "clean_accuracy": float(readout.outcome(vectors, test)[0].mean()),
        "found": found,
        "strength": strength,
        "trigger_rank": scan.rank(config.into, marker.word),
        "attribution_rank": attribution.rank(config.into, word),
        "hard_prompt": hard.text,
        "hard_prompt_tokens": hard.tokens,
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
