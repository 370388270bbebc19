"""``probe frontier``: the trade between what a prompt does and how faithfully its nearest tokens read it.

It trains prompts over faithfulness weights λ (:mod:`probe.training.readable`) x seeds, then scores each run's
nearest-token reading against its soft prompt on the test split (:mod:`probe.readings.explain.faithfulness`):
accuracy, agreement, KL and gain retained, with paired intervals, beside the soft accuracy, how far the prompt
travelled and its on-manifold share. The Pareto set over (soft accuracy, gain retained) is marked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from probe.core.data import BUNDLED
from probe.core.index import VocabIndex, normalize_rows
from probe.core.io import atomic_write_json, atomic_write_text
from probe.core.models import LoadedModel, load_model
from probe.core.stats import example_draws, paired_interval, percentile_interval
from probe.experiments.grid import run_grid
from probe.formats.frontier_report import FRONTIER_JSON, FRONTIER_MD, FrontierReport
from probe.formats.replicate_report import RUNS
from probe.formats.run import Run
from probe.readings.explain.faithfulness import score_stand_ins
from probe.readings.explain.readout import Readout
from probe.readings.measures import on_manifold
from probe.training.config import TrainConfig

AIM = {"gain_retained": 0.8, "agreement": 0.9, "soft_within": 0.015}
"""The aim a point is measured against: its reading keeps 80% of the gain over zero-shot and agrees with the soft
prompt on 90% of the test rows, while its soft accuracy is within 1.5 points of the unconstrained runs'."""


@dataclass(frozen=True)
class FrontierConfig:
    """What ``probe frontier`` trains: faithfulness weights x seeds, one init and length (see :class:`TrainConfig`)."""

    model: str = "default"
    data: Any = BUNDLED
    weights: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    init: str = "class-label"
    length: int = 20
    steps: int = 150
    lr: float = 0.01
    task: str = "cosine"
    test_size: int | None = None
    bootstrap: int = 1000

    def __post_init__(self) -> None:
        from probe.training.config import check_weight

        if not self.weights or not self.seeds:
            raise ValueError("a frontier needs at least one weight and one seed")
        for weight in self.weights:
            check_weight(weight, "a faithfulness weight", upper=1.0)

    @classmethod
    def quick(cls, **overrides: Any) -> FrontierConfig:
        """The ``--quick`` sweep: weights 0, 0.5 and 1, one seed, 60 steps, the figures on 400 test rows."""
        return replace(cls(weights=(0.0, 0.5, 1.0), seeds=(0,), steps=60, test_size=400), **overrides)

    def run_configs(self) -> dict[str, TrainConfig]:
        """Run name -> training config for the whole sweep."""
        return {
            f"lambda{weight:g}-s{seed}": TrainConfig(
                model=self.model,
                data=self.data,
                init=self.init,
                length=self.length,
                steps=self.steps,
                lr=self.lr,
                seed=seed,
                task=self.task,  # type: ignore[arg-type]
                test_size=self.test_size,
                faithfulness_weight=weight,
                snapshot_every=max(1, self.steps // 2),
                eval_every=self.steps,
                eval_size=100,
            )
            for weight in self.weights
            for seed in self.seeds
        }


def frontier(
    config: FrontierConfig,
    out: str | os.PathLike[str],
    *,
    executor: Any = None,
    progress: bool = True,
    force: bool = False,
) -> FrontierReport:
    """Train the sweep (skipping finished runs) into ``out/runs``, measure it, and write ``frontier.json``,
    ``frontier.md`` and ``frontier.html`` into ``out``."""
    runs = run_grid(config.run_configs(), Path(out) / RUNS, executor=executor, force=force, progress=progress)
    report = measure(config, runs)
    write(report, Path(out))
    return report


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
    context = {
        "model": model.name,
        "data": str(config.data) if isinstance(config.data, str) else "<memory>",
        "init": config.init,
        "length": config.length,
        "steps": config.steps,
        "task": config.task,
        "test_rows": len(readout.splits.test) if runs else 0,
        "weights": list(config.weights),
        "seeds": list(config.seeds),
        "pareto": "over (soft accuracy, agreement): no other run at least as high in both and higher in one",
    }
    return FrontierReport(
        zero_shot_accuracy=zero, runs=rows, context=context, aim={**_aim(rows), "most_constrained": pooled}
    )


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
    row = max(report.runs, key=lambda r: (r["discretised_accuracy"], r["soft_accuracy"]))
    for path in (Path(folder) / RUNS / Path(row["run"]).name, Path(row["run"])):
        if path.is_dir():
            return row, path
    raise ValueError(
        f"the frontier run '{row['run']}' is not in '{folder}/{RUNS}'; rerun probe frontier --out {folder}"
    )


def render(report: FrontierReport) -> str:
    """The markdown report."""
    c, aim = report.context, report.aim
    lines = [
        "# The accuracy–faithfulness frontier",
        "",
        f"Model `{c.get('model')}`, data `{c.get('data')}`, {c.get('init')} init, p={c.get('length')}, "
        f"{c.get('steps')} steps, task {c.get('task')}; {c.get('test_rows')} test rows; zero-shot "
        f"{report.zero_shot_accuracy:.3f}. Each run trains on (1 - λ) · loss(soft) + λ · loss(nearest tokens); its "
        "nearest-token reading is scored against its soft prompt (95% paired intervals over the test rows).",
        "",
        "| λ | seed | soft | nearest tokens | vs λ=0's nearest tokens | agreement | KL | gain retained | cos to init "
        "| on-manifold | Pareto |",
        "|---:|---:|---|---|---|---|---:|---|---:|---:|:---:|",
    ]
    for r in sorted(report.runs, key=lambda r: (r["weight"], r["seed"] or 0)):

        def cell(name: str, r: dict[str, Any] = r) -> str:
            value = r.get({"soft": "soft_accuracy", "discretised": "discretised_accuracy"}.get(name, name))
            low, high = r.get(f"{name}_ci") or (float("nan"), float("nan"))
            sign = "+" if name == "reading_gain" else ""
            return "–" if value is None else f"{value:{sign}.3f} [{low:{sign}.3f}, {high:{sign}.3f}]"

        lines.append(
            f"| {r['weight']:g} | {r['seed']} | {cell('soft')} | {cell('discretised')} | {cell('reading_gain')} | "
            f"{cell('agreement')} | "
            f"{r['kl']:.3f} | {cell('gain_retained')} | {r['travel']:.2f} | {r['on_manifold']:.0%} | "
            f"{'yes' if r['pareto'] else ''} |"
        )
    best = aim.get("best_within_reach")
    lines += ["", "## Against the aim", ""]
    lines.append(
        f"Aim: a point whose nearest tokens keep at least {aim['gain_retained']:.0%} of the gain and agree on at "
        f"least {aim['agreement']:.0%} of the test rows, with a soft accuracy within {aim['soft_within'] * 100:.1f} "
        f"points of the unconstrained runs' ({aim['unconstrained_soft_accuracy']:.3f})."
    )
    if best:
        lines.append(
            f"The best point within reach: λ={best['weight']:g}, seed {best['seed']}: gain retained "
            f"{best['gain_retained']:.2f}, agreement {best['agreement']:.2f}, soft {best['soft_accuracy']:.3f}."
        )
    lines.append(f"Runs meeting the aim: {len(aim['runs_meeting_it'])} of {len(report.runs)}.")
    top = aim.get("most_constrained")
    if top:
        low, high = top["reading_gain_ci"]
        real = "measurably above" if low > 0 else "not measurably above"
        reads = np.mean([r["discretised_accuracy"] for r in report.runs if r["weight"] == top["weight"]])
        lines.append(
            f"The most constrained point (λ={top['weight']:g}, {top['seeds']} seed(s)) reads at {reads:.3f}: "
            f"{top['reading_gain']:+.3f} [{low:+.3f}, {high:+.3f}] against the unconstrained runs' nearest tokens "
            f"(paired per seed, pooled), {real} them."
        )
    return "\n".join(lines) + "\n"


def write(report: FrontierReport, out: Path) -> None:
    """``frontier.json``, ``frontier.md`` and the figure ``frontier.html`` into ``out``."""
    from probe.plots.export import to_html
    from probe.plots.frontier import frontier_figure

    text, html = render(report), to_html(frontier_figure(report), inline=False)  # all made before any is written
    atomic_write_json(out / FRONTIER_JSON, report.to_dict())
    atomic_write_text(out / FRONTIER_MD, text)
    atomic_write_text(out / "frontier.html", html)
