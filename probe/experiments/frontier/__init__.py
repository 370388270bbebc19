"""``probe frontier``: the trade between what a prompt does and how faithfully its nearest tokens read it.

It trains prompts over faithfulness weights λ (:mod:`probe.training.readable`) x seeds (:mod:`.config`), then
scores each run's nearest-token reading against its soft prompt on the test split (:mod:`.measure`): accuracy,
agreement, KL and gain retained, with paired intervals, beside the soft accuracy, how far the prompt travelled and
its on-manifold share. The Pareto set over (soft accuracy, agreement) is marked. The record is
:class:`.record.FrontierReport` (``frontier.json``, ``frontier.md``), the figure :func:`.figure.frontier_figure`
(``frontier.html``), the dashboard's table :func:`.table.frontier_view`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from probe.core.models import LoadedModel, load_model
from probe.experiments.frontier.config import AIM, FrontierConfig
from probe.experiments.frontier.record import FRONTIER_JSON, FRONTIER_MD, FrontierReport
from probe.experiments.grid import Cost
from probe.experiments.sweep import Plan, run_sweep
from probe.experiments.sweep import write as write_files
from probe.formats.run import Run

__all__ = ["AIM", "SWEEP", "FrontierConfig", "FrontierReport", "best_start", "frontier", "measure", "render", "write"]


class FrontierSweep:
    """The frontier as a :class:`probe.experiments.sweep.Sweep`."""

    name = "frontier"

    def plan(self, settings: FrontierConfig, out: Path, model: LoadedModel) -> Plan[FrontierConfig]:
        return Plan(settings, settings.run_configs(), {})

    def measure(
        self, plan: Plan[FrontierConfig], runs: dict[str, Run], model: LoadedModel, progress: bool
    ) -> FrontierReport:
        from probe.experiments.frontier.measure import measure

        return measure(plan.settings, list(runs.values()), model)

    def outputs(self, report: FrontierReport) -> dict[str, str]:
        from probe.experiments.frontier.figure import frontier_figure
        from probe.plots.export import to_html

        return {
            FRONTIER_JSON: report.to_json() + "\n",
            FRONTIER_MD: report.to_markdown(),
            "frontier.html": to_html(frontier_figure(report), inline=False),
        }

    def reading_cost(self, plan: Plan[FrontierConfig]) -> Cost:
        # each run's prompt and its nearest tokens scored on the test rows
        rows = plan.settings.test_size or 0
        return Cost(rows=2 * rows * len(plan.configs))


SWEEP = FrontierSweep()


def frontier(
    config: FrontierConfig,
    out: str | os.PathLike[str],
    *,
    executor: Any = None,
    progress: bool = True,
    force: bool = False,
    model: LoadedModel | None = None,
) -> FrontierReport:
    """Train the sweep (skipping finished runs) into ``out/runs``, measure it, and write ``frontier.json``,
    ``frontier.md`` and ``frontier.html`` into ``out``."""
    model = model or load_model(config.model, device="cpu")
    plan = SWEEP.plan(config, Path(out), model)
    return run_sweep(SWEEP, plan, out, model, executor=executor, progress=progress, force=force)


def measure(config: FrontierConfig, runs: list[Run], model: LoadedModel | None = None) -> FrontierReport:
    """See :func:`probe.experiments.frontier.measure.measure`."""
    from probe.experiments.frontier.measure import measure as measure_runs

    return measure_runs(config, runs, model)


def best_start(report: FrontierReport, folder: str | os.PathLike[str]) -> tuple[dict[str, Any], Path]:
    """See :func:`probe.experiments.frontier.measure.best_start`."""
    from probe.experiments.frontier.measure import best_start as best

    return best(report, folder)


def render(report: FrontierReport) -> str:
    """The markdown report (:meth:`FrontierReport.to_markdown`)."""
    return report.to_markdown()


def write(report: FrontierReport, out: Path) -> None:
    """``frontier.json``, ``frontier.md`` and the figure ``frontier.html`` into ``out``."""
    write_files(SWEEP, report, out)
