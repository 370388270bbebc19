"""``probe frontier``: the trade between what a prompt does and how faithfully its nearest tokens read it.

It trains prompts over faithfulness weights λ (:mod:`probe.training.readable`) x seeds (:mod:`.config`), then
scores each run's nearest-token reading against its soft prompt on the test split (:mod:`.measure`): accuracy,
agreement, KL and gain retained, with paired intervals, beside the soft accuracy, how far the prompt travelled and
its on-manifold share. The Pareto set over (soft accuracy, agreement) is marked. The record is
:class:`.record.FrontierReport` (``frontier.json``, ``frontier.md``), the figure :func:`.figure.frontier_figure`
(``frontier.html``), the dashboard's table :func:`.table.frontier_view`.
"""

from __future__ import annotations

from pathlib import Path

from probe.core.models import LoadedModel
from probe.experiments.frontier.config import AIM, FrontierConfig
from probe.experiments.frontier.measure import best_start, measure
from probe.experiments.frontier.record import FRONTIER_JSON, FRONTIER_MD, FrontierReport
from probe.experiments.grid import Cost
from probe.experiments.sweep import Plan, Sweep
from probe.formats.run import Run

__all__ = ["AIM", "SWEEP", "FrontierConfig", "FrontierReport", "best_start", "frontier", "measure", "render", "write"]


class FrontierSweep(Sweep[FrontierConfig, FrontierReport]):
    """The frontier as a :class:`probe.experiments.sweep.Sweep`."""

    name = "frontier"
    files = (FRONTIER_JSON, FRONTIER_MD)
    figures = (("frontier.html", "probe.experiments.frontier.figure.frontier_figure"),)

    def plan(self, settings: FrontierConfig, out: Path, model: LoadedModel) -> Plan[FrontierConfig]:
        return Plan(settings, settings.run_configs(), {})

    def measure(
        self, plan: Plan[FrontierConfig], runs: dict[str, Run], model: LoadedModel, progress: bool
    ) -> FrontierReport:
        return measure(plan.settings, list(runs.values()), model)

    def reading_cost(self, plan: Plan[FrontierConfig]) -> Cost:
        # each run's prompt and its nearest tokens scored on the test rows
        return Cost(rows=2 * (plan.settings.test_size or 0) * len(plan.configs))


SWEEP = FrontierSweep()
frontier = SWEEP.run
write = SWEEP.write
render = FrontierReport.to_markdown
