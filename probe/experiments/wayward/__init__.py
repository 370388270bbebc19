"""``probe wayward``: the trust test for the nearest-token reading, on the user's own model and task.

After Khashabi et al. 2022 ("Prompt Waywardness"): prompts are trained with a projection term that forces each
position's nearest token onto a target (:mod:`.config`): an unrelated text, and the label names in another order.
Beside each, an unconstrained prompt of the same seed. The report (:mod:`.measure`, :class:`.record.WaywardReport`:
``wayward.json``, ``wayward.md``) gives what reading as the target costs in accuracy, paired over the test rows,
and the share of positions that read as the target. If a prompt can read as anything at little cost, its nearest
tokens alone say nothing about what it does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from probe.core.models import LoadedModel, load_model
from probe.experiments.grid import Cost
from probe.experiments.sweep import Plan, run_sweep
from probe.experiments.sweep import write as write_files
from probe.experiments.wayward.config import UNRELATED, WaywardConfig
from probe.experiments.wayward.record import LITTLE, WAYWARD_JSON, WAYWARD_MD, WaywardReport
from probe.formats.run import Run
from probe.training.config import TrainConfig

__all__ = ["LITTLE", "SWEEP", "UNRELATED", "WaywardConfig", "WaywardReport", "measure", "plan", "render", "wayward"]


class WaywardSweep:
    """Waywardness as a :class:`probe.experiments.sweep.Sweep`."""

    name = "wayward"

    def plan(self, settings: WaywardConfig, out: Path, model: LoadedModel) -> Plan[WaywardConfig]:
        return Plan(settings, settings.checked_run_configs(model), {})

    def measure(
        self, plan: Plan[WaywardConfig], runs: dict[str, Run], model: LoadedModel, progress: bool
    ) -> WaywardReport:
        from probe.experiments.wayward.measure import measure

        return measure(plan.settings, runs, model)

    def outputs(self, report: WaywardReport) -> dict[str, str]:
        return {WAYWARD_JSON: report.to_json() + "\n", WAYWARD_MD: report.to_markdown()}

    def reading_cost(self, plan: Plan[WaywardConfig]) -> Cost:
        # every run's prompt scored once on the test rows
        return Cost(rows=(plan.settings.test_size or 0) * len(plan.configs))


SWEEP = WaywardSweep()


def plan(config: WaywardConfig, model: LoadedModel | None = None) -> tuple[dict[str, TrainConfig], LoadedModel]:
    """The runs to train, every target checked first; (run configs, model)."""
    model = model or load_model(config.model, device="cpu")
    return config.checked_run_configs(model), model


def wayward(
    config: WaywardConfig,
    out: str | os.PathLike[str],
    *,
    executor: Any = None,
    progress: bool = True,
    force: bool = False,
    model: LoadedModel | None = None,
) -> WaywardReport:
    """Train the runs (skipping finished ones) into ``out/runs``, measure them, and write ``wayward.json`` and
    ``wayward.md`` into ``out``."""
    model = model or load_model(config.model, device="cpu")
    the_plan = SWEEP.plan(config, Path(out), model)
    return run_sweep(SWEEP, the_plan, out, model, executor=executor, progress=progress, force=force)


def measure(config: WaywardConfig, runs: dict[str, Run], model: LoadedModel | None = None) -> WaywardReport:
    """See :func:`probe.experiments.wayward.measure.measure`."""
    from probe.experiments.wayward.measure import measure as measure_runs

    return measure_runs(config, runs, model)


def render(report: WaywardReport) -> str:
    """The markdown report (:meth:`WaywardReport.to_markdown`)."""
    return report.to_markdown()


def write(report: WaywardReport, out: Path) -> None:
    """``wayward.json`` and ``wayward.md`` into ``out``."""
    write_files(SWEEP, report, out)
