"""``probe frontier``'s measurement: each run's nearest-token reading scored against its soft prompt on the test
split (:mod:`probe.readings.explain.faithfulness`), paired against the unconstrained run of its seed; the Pareto
set; the aim."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from probe.core.index import VocabIndex, normalize_rows
from probe.core.models import LoadedModel, load_model
from probe.core.stats import example_draws, paired_interval, percentile_interval
from probe.experiments.frontier.config import AIM, FrontierConfig
from probe.experiments.frontier.record import FrontierReport
from probe.experiments.grid import RUNS
from probe.formats.run import Run
from probe.readings.explain.faithfulness import score_stand_ins
from probe.readings.explain.hardening import harden
from probe.readings.explain.readout import Readout
from probe.readings.measures import on_manifold


def measure(config: FrontierConfig, runs: list[Run], model: LoadedModel | None = None) -> FrontierReport:
    """Each run's soft accuracy and its nearest-token reading's faithfulness scores, the reading's accuracy against
    the unconstrained run of the same seed (paired over the test rows), the Pareto set, the aim."""
    model = model or load_model(config.model, device="cpu")
    index = VocabIndex.for_model(model)
    rows, right, zero = [], {}, float("nan")
    for run in runs:
        readout = Readout.from_run(run, model)
        prompt = run.latest_prompt()
        correct: dict[str, np.ndarray] = {}
        faith = score_stand_ins(prompt, readout, bootstrap=config.bootstrap, per_example=correct)
        reading = faith["discretised"]
        zero = faith.zero_shot_accuracy
        first = run.initial_prompt().vectors
        cos, _ = index.search(prompt.vectors, 1)
        right[str(run.path)] = correct["discretised"]
        rows.append(
            {
                "run": str(run.path),
                "weight": float((run.manifest.config or {}).get("faithfulness_weight", 0.0)),
                "seed": run.manifest.seed,
                "soft_accuracy": faith.soft_accuracy,
                "soft_ci": faith.soft_ci,
                "discretised_accuracy": reading.accuracy,
                "discretised_ci": reading.accuracy_ci,
                "agreement": reading.agreement,
                "agreement_ci": reading.agreement_ci,
                "kl": reading.kl,
                "kl_ci": reading.kl_ci,
                "gain_retained": reading.gain_retained,
                "gain_retained_ci": reading.gain_retained_ci,
                "travel": float(np.einsum("pd,pd->p", normalize_rows(prompt.vectors), normalize_rows(first)).mean()),
                "on_manifold": float(on_manifold(index, cos[:, 0]).mean()),
            }
        )
    pooled = _against_unconstrained(rows, right, config.bootstrap)
    _mark_pareto(rows)
    hard = hard_prompts(config, runs, rows, model)
    context = config.context(model) | {"test_rows": len(readout.splits.test) if runs else 0}
    context |= {"weights": list(config.weights)}
    context["pareto"] = "over (soft accuracy, agreement): no other run at least as high in both and higher in one"
    aim = {**_aim(rows), "most_constrained": pooled}
    return FrontierReport(zero_shot_accuracy=zero, runs=rows, context=context, aim=aim, hard_prompts=hard)


def hard_prompts(
    config: FrontierConfig, runs: list[Run], rows: list[dict[str, Any]], model: LoadedModel
) -> list[dict[str, Any]]:
    """At each of ``config.hard_lengths``, the exact search's hard prompt (``config.hard_steps`` steps, the first
    seed) from the run whose nearest tokens score best (:func:`best_row`), scored against that run's soft prompt by
    :func:`score_stand_ins` on the same test rows; one dict per length (none when no length is asked for)."""
    if not config.hard_lengths or not rows:
        return []
    best = best_row(rows)
    run = next(r for r in runs if str(r.path) == best["run"])
    readout, prompt = Readout.from_run(run, model), run.latest_prompt()
    found = []
    for length in config.hard_lengths:
        began = time.perf_counter()
        hard = harden(
            prompt, readout, method="search", length=length, steps=config.hard_steps, seed=config.seeds[0],
            state_dir=run.path,  # resumable: each length keeps its own state in the run folder
        )  # fmt: skip
        seconds = time.perf_counter() - began
        stand_in = model.embeddings_numpy()[hard.token_ids]
        s = score_stand_ins(prompt, readout, stand_ins={"hard": stand_in}, bootstrap=config.bootstrap)["hard"]
        found.append(
            {
                "run": best["run"],
                "length": length,
                "steps": config.hard_steps,
                "tokens": list(hard.tokens),
                "token_ids": [int(t) for t in hard.token_ids],
                **{name: getattr(s, name) for name in ("accuracy", "agreement", "kl", "gain_retained")},
                **{f"{name}_ci": getattr(s, f"{name}_ci") for name in ("accuracy", "agreement", "gain_retained")},
                "word_share": hard.word_share,
                "seconds": round(seconds, 1),
            }
        )
    return found


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose nearest tokens score best (then the higher soft accuracy): where a hard-prompt search starts
    best."""
    return max(rows, key=lambda r: (r["discretised_accuracy"], r["soft_accuracy"]))


def _against_unconstrained(
    rows: list[dict[str, Any]], right: dict[str, np.ndarray], bootstrap: int
) -> dict[str, Any] | None:
    """Each run's nearest-token accuracy minus that of the unconstrained (λ=0) run of its seed, with a paired
    interval over the test rows (``reading_gain``, ``reading_gain_ci``; NaN without such a run). Returns the same
    for the most constrained weight, pooled over its seeds (one resample of the rows shared by all of them), or
    None without a constrained weight."""
    free = {r["seed"]: right[r["run"]] for r in rows if r["weight"] == 0}
    diffs: dict[float, list[np.ndarray]] = {}
    draws = None
    for r in rows:
        base = free.get(r["seed"])
        if base is None:
            r["reading_gain"], r["reading_gain_ci"] = float("nan"), (float("nan"), float("nan"))
            continue
        draws = example_draws(len(base), n=bootstrap, seed=0, stream=4)
        r["reading_gain"] = float((right[r["run"]] - base).mean())
        r["reading_gain_ci"] = paired_interval(right[r["run"]], base, draws)
        diffs.setdefault(r["weight"], []).append(right[r["run"]] - base)
    top = max(diffs, default=0.0)
    if top == 0 or draws is None:
        return None
    pooled = np.mean(diffs[top], axis=0)  # per test row, the mean over seeds
    return {
        "weight": top,
        "seeds": len(diffs[top]),
        "reading_gain": float(pooled.mean()),
        "reading_gain_ci": percentile_interval(pooled[draws].mean(1)),
    }


def _mark_pareto(rows: list[dict[str, Any]]) -> None:
    """A run is on the Pareto set when no other run is at least as good in both soft accuracy and agreement and
    better in one. Agreement, not gain retained, is the faithfulness axis: gain retained divides by the run's own
    soft gain over zero-shot, which is near 0 for a prompt trained only through its tokens (λ=1)."""
    for row in rows:
        a, g = row["soft_accuracy"], row["agreement"]
        row["pareto"] = not any(
            (o["soft_accuracy"] >= a and o["agreement"] >= g) and (o["soft_accuracy"] > a or o["agreement"] > g)
            for o in rows
        )


def _aim(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the frontier lands against :data:`AIM`: the unconstrained soft accuracy, the best point within reach
    of it, and whether any run meets the aim."""
    free = [r["soft_accuracy"] for r in rows if r["weight"] == 0]
    unconstrained = float(np.mean(free)) if free else float("nan")
    close = [r for r in rows if r["soft_accuracy"] >= unconstrained - AIM["soft_within"]]
    best = max(close, key=lambda r: r["gain_retained"], default=None)
    met = [r["run"] for r in close if r["gain_retained"] >= AIM["gain_retained"] and r["agreement"] >= AIM["agreement"]]
    return {**AIM, "unconstrained_soft_accuracy": unconstrained, "best_within_reach": best, "runs_meeting_it": met}


def best_start(report: FrontierReport, folder: str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """(row, run folder) of the run whose nearest tokens score best: where a hard-prompt search starts best.

    Raises:
        ValueError: the report lists no run, or its best run's folder is gone.
    """
    if not report.runs:
        raise ValueError(f"the frontier report in '{folder}' lists no runs; run probe frontier --out {folder} first")
    row = best_row(report.runs)
    for path in (Path(folder) / RUNS / Path(row["run"]).name, Path(row["run"])):
        if path.is_dir():
            return row, path
    raise ValueError(
        f"the frontier run '{row['run']}' is not in '{folder}/{RUNS}'; rerun probe frontier --out {folder}"
    )
