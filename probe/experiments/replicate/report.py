"""``probe replicate``'s report: the six findings measured from the saved runs alone, as markdown, as
``report.json`` (:class:`probe.experiments.replicate.record.ReplicateReport`) and as figures."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probe.core.frames import as_splits, describe
from probe.core.models import LoadedModel
from probe.experiments.grid import RUNS
from probe.experiments.replicate.accuracy import accuracy_by_length
from probe.experiments.replicate.config import ReplicateConfig
from probe.experiments.replicate.context import N_CONTROL, build_context
from probe.experiments.replicate.findings import (
    domain_words,
    labels_elsewhere,
    labels_persist,
    repeated_neighbours,
    semantic_clusters,
)
from probe.experiments.replicate.record import REPORT_JSON, REPORT_MD, Finding, ReplicateReport
from probe.experiments.sweep import Sweep


def measure_findings(
    runs_dir: str | os.PathLike[str],
    *,
    k: int = 5,
    bootstrap: int = 2000,
    data: Any = None,
    model: LoadedModel | None = None,
    check_seconds: Callable[[float], None] | None = None,
) -> tuple[list[Finding], pd.DataFrame, dict[str, Any]]:
    """Measure the six findings from the finished runs in ``runs_dir`` alone.

    Returns:
        (findings, accuracy table by init and length, context: model, data, task, regime, seeds, settings,
        controls, resampling, travel by init).

    Raises:
        ValueError: no finished runs, or runs of different models.
    """
    c = build_context(runs_dir, k=k, bootstrap=bootstrap, data=data, model=model, check_seconds=check_seconds)
    findings = [semantic_clusters(c), labels_persist(c), labels_elsewhere(c), repeated_neighbours(c), domain_words(c)]
    accuracy, table = accuracy_by_length(c)
    found = [f for f in [*findings, accuracy] if f is not None]
    readings, runs = c.readings, c.runs
    configs = [run.manifest.config or {} for run in runs]

    def setting(key: str, default: Any = None) -> list[Any]:
        return sorted({str(cfg.get(key, default)) for cfg in configs})

    context = {
        "model": c.model.name,
        "data": c.data if isinstance(c.data, str | os.PathLike) else describe(c.data, as_splits(c.data)),
        "task": setting("task", "cosine"),
        "runs": len(readings),
        "seeds": sorted({r.seed for r in readings if r.seed is not None}),
        "inits": sorted({r.init for r in readings}),
        "lengths": sorted({r.length for r in readings}),
        "steps": sorted({int(run.manifest.steps or 0) for run in runs}),
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


def render(findings: list[Finding], table: pd.DataFrame, context: dict[str, Any]) -> str:
    """The markdown report (measuring is done: this only formats; :meth:`ReplicateReport.to_markdown`)."""
    return ReplicateReport(context=context, findings=findings, accuracy=table.to_dict("records")).to_markdown()


SWEEP: Sweep[ReplicateConfig, ReplicateReport] = Sweep(
    "replicate",
    lambda plan, runs, model, progress: measure_report(
        plan.settings, Path(next(iter(runs.values())).path).parent, started=plan.extra.get("started"), model=model
    ),
    (REPORT_JSON, REPORT_MD),
    (
        ("accuracy.html", "probe.experiments.replicate.figure.accuracy_by_length_figure"),
        ("duplicates.html", "probe.experiments.replicate.figure.repeated_neighbours_figure"),
    ),
)  # the findings read the saved runs: their cost is seconds, next to training (no reading cost)


def measure_report(
    config: ReplicateConfig,
    runs_dir: str | os.PathLike[str],
    *,
    started: float | None = None,
    model: LoadedModel | None = None,
    check_seconds: Callable[[float], None] | None = None,
) -> ReplicateReport:
    """The report of the runs in ``runs_dir``: the findings, the accuracy table and the context (the settings, the
    seconds since ``started``); ``check_seconds``: see :func:`probe.experiments.replicate.context.build_context`."""
    started = started if started is not None else time.time()
    findings, table, context = measure_findings(
        runs_dir, k=config.k, bootstrap=config.bootstrap, data=config.data, model=model, check_seconds=check_seconds
    )
    context["config"] = dataclasses.asdict(dataclasses.replace(config, data=context["data"]))  # in-memory data by name
    context["seconds"] = round(time.time() - started, 1)
    return ReplicateReport(context=context, findings=findings, accuracy=table.to_dict("records"))


def replicate(
    config: ReplicateConfig,
    out: str | os.PathLike[str],
    *,
    progress: bool = True,
    force: bool = False,
    executor: Any = None,
    model: LoadedModel | None = None,
) -> str:
    """Train the grid, measure the findings, and write ``report.md``, ``report.json`` and the figures into ``out``;
    the markdown."""
    return SWEEP.run(config, out, executor=executor, progress=progress, force=force, model=model).to_markdown()


def write_report(
    config: ReplicateConfig,
    out: str | os.PathLike[str],
    *,
    started: float | None = None,
    check_seconds: Callable[[float], None] | None = None,
) -> str:
    """Measure the findings from ``out/runs`` alone and write ``report.md``, ``report.json`` and the figures; the
    markdown. ``check_seconds``: a budget's check, given the reading's time before most of it (see
    :func:`probe.experiments.replicate.context.build_context`)."""
    report = measure_report(config, Path(out) / RUNS, started=started, check_seconds=check_seconds)
    SWEEP.write(report, out)
    return report.to_markdown()
