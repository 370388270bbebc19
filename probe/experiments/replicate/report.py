"""``probe replicate``'s report: the six findings measured from the saved runs alone, as markdown, as
``report.json`` (:class:`probe.formats.replicate_report.ReplicateReport`) and as figures."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probe.core.frames import as_splits, describe
from probe.core.io import atomic_write_json, atomic_write_text
from probe.core.models import LoadedModel
from probe.experiments.replicate.accuracy import accuracy_by_length
from probe.experiments.replicate.config import ReplicateConfig, train_grid
from probe.experiments.replicate.context import N_CONTROL, build_context
from probe.experiments.replicate.findings import (
    domain_words,
    labels_elsewhere,
    labels_persist,
    repeated_neighbours,
    semantic_clusters,
)
from probe.formats.replicate_report import REPORT_JSON, REPORT_MD, RUNS, Finding, ReplicateReport
from probe.plots.export import to_html
from probe.readings.reports import FAITHFULNESS_CAVEAT


def measure_findings(
    runs_dir: str | os.PathLike[str],
    *,
    k: int = 5,
    bootstrap: int = 2000,
    data: Any = None,
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
        lines.append(
            f"| {f.number} | {f.name} | {f.paper} | {f.show_estimate()} | {f.show(f.init_control)} | "
            f"{f.show(f.random_control)} | {f.verdict} | {f.runs_used} |"
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
    context["config"] = dataclasses.asdict(dataclasses.replace(config, data=context["data"]))  # in-memory data by name
    context["seconds"] = round(time.time() - started, 1)
    text = render(findings, table, context)
    atomic_write_text(Path(out) / REPORT_MD, text)
    report = ReplicateReport(context=context, findings=findings, accuracy=table.to_dict("records"))
    atomic_write_json(Path(out) / REPORT_JSON, report.to_dict())
    _figures(report, Path(out))
    return text


def _figures(report: ReplicateReport, out: Path) -> None:
    """The report's figures as interactive HTML pages beside it."""
    from probe.plots.replicate import accuracy_by_length_figure, repeated_neighbours_figure

    atomic_write_text(out / "accuracy.html", to_html(accuracy_by_length_figure(report), inline=False))
    repeats = repeated_neighbours_figure(report)
    if repeats is not None:
        atomic_write_text(out / "duplicates.html", to_html(repeats, inline=False))
