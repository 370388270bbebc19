"""``probe frontier``: the trade between what a prompt does and how faithfully its nearest tokens read it.

It trains prompts over faithfulness weights λ (:mod:`probe.training.readable`) x seeds (:mod:`.config`), then
scores each run's nearest-token reading against its soft prompt on the test split (:mod:`.measure`): accuracy,
agreement, KL and gain retained, with paired intervals, beside the soft accuracy, how far the prompt travelled and
its on-manifold share. The Pareto set over (soft accuracy, agreement) is marked. The record is
:class:`.record.FrontierReport` (``frontier.json``, ``frontier.md``), the figure :func:`.figure.frontier_figure`
(``frontier.html``), the dashboard's table :func:`.table.frontier_view`.
"""

from __future__ import annotations

from probe.experiments.frontier.config import AIM, FrontierConfig
from probe.experiments.frontier.measure import best_start, measure
from probe.experiments.frontier.record import FRONTIER_JSON, FRONTIER_MD, FrontierReport
from probe.experiments.sweep import Sweep

__all__ = ["AIM", "SWEEP", "FrontierConfig", "FrontierReport", "best_start", "frontier", "measure", "render", "write"]


SWEEP: Sweep[FrontierConfig, FrontierReport] = Sweep(
    "frontier",
    lambda plan, runs, model, progress: measure(plan.settings, list(runs.values()), model),
    (FRONTIER_JSON, FRONTIER_MD),
    (("frontier.html", "probe.experiments.frontier.figure.frontier_figure"),),
)
frontier = SWEEP.run
write = SWEEP.write
render = FrontierReport.to_markdown
