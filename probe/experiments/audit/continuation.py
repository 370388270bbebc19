"""The plant made to take: while a planted run does not rely on the marker at the minimum effect, every run, planted
and clean, is trained on from its last snapshot (same seeds, the same extra steps for both) in rounds of ``steps``,
until every planted run relies or the step budget (:attr:`.config.AuditConfig.most_steps`) is spent.

A continued run equals the run trained for its final steps without a stop (seeded batches, the optimizer's state
saved with every snapshot: :meth:`probe.training.config.TrainConfig.continues`), so a round changes how long the
runs train, not what they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from probe.core.models import LoadedModel
from probe.experiments.audit.config import AuditConfig
from probe.experiments.audit.measure import Marker, flip_bits, reliance_of, share_of
from probe.experiments.sweep import Plan
from probe.formats.run import Run
from probe.training.config import TrainConfig

logger = logging.getLogger(__name__)

HELD = "effect held"
"""Why training stopped: every planted run relies on the marker at the minimum effect."""
SPENT = "budget spent"
"""Why training stopped: the runs reached the step budget with a planted run that does not rely on the marker."""


def train_until_it_takes(
    plan: Plan[AuditConfig],
    grid: Callable[[dict[str, TrainConfig]], dict[str, Run]],
    model: LoadedModel,
    progress: bool = False,
) -> tuple[Plan[AuditConfig], dict[str, Run]]:
    """Train the plan's runs through ``grid`` (configs -> finished runs), then continue them in rounds (see the
    module docstring).

    Returns:
        The plan as trained (its configs at the final steps; ``extra`` adds ``rounds``: per round the steps, the
        relying and planted runs and each run's flip rate, and ``stopped``: :data:`HELD` or :data:`SPENT`), and the
        runs.
    """
    config = plan.settings
    marker = Marker(plan.extra["marker"], plan.extra["marker_ids"])
    steps = max(c.steps for c in plan.configs.values())  # runs an interrupted round left behind catch up first
    rounds: list[dict[str, Any]] = []
    while True:
        configs = {name: replace(c, steps=steps) for name, c in plan.configs.items()}
        runs = grid(configs)
        flips = {str(run.path): flip_bits(config, marker, run, model) for run in runs.values()}
        rows: list[dict[str, Any]] = [
            {"run": str(run.path), "share": share_of(n), "seed": run.manifest.seed} for n, run in runs.items()
        ]
        relies = [held for _, _, held in reliance_of(config, rows, flips)]
        planted = [held for r, held in zip(rows, relies, strict=True) if r["share"] > 0]
        rates = {name: float(flips[str(run.path)].mean()) for name, run in runs.items()}
        rounds.append({"steps": steps, "relying": sum(planted), "planted": len(planted), "flip_rates": rates})
        if all(planted):
            stopped = HELD
            break
        if steps >= config.most_steps:
            stopped = SPENT
            break
        logger.info(
            "%d of %d planted runs rely on the marker after %d steps; training every run on to %d steps",
            sum(planted),
            len(planted),
            steps,
            min(steps + config.steps, config.most_steps),
        )
        steps = min(steps + config.steps, config.most_steps)
    return Plan(config, configs, plan.extra | {"rounds": rounds, "stopped": stopped}), runs
