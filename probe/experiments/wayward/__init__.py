"""``probe wayward``: the trust test for the nearest-token reading, on the user's own model and task.

After Khashabi et al. 2022 ("Prompt Waywardness"): prompts are trained with a projection term that forces each
position's nearest token onto a target (:mod:`.config`): an unrelated text, and the label names in another order.
Beside each, an unconstrained prompt of the same seed. The report (:mod:`.measure`, :class:`.record.WaywardReport`:
``wayward.json``, ``wayward.md``) gives what reading as the target costs in accuracy, paired over the test rows,
and the share of positions that read as the target. If a prompt can read as anything at little cost, its nearest
tokens alone say nothing about what it does.
"""

from __future__ import annotations

from probe.core.models import LoadedModel, load_model
from probe.experiments.sweep import Sweep
from probe.experiments.wayward.config import UNRELATED, WaywardConfig
from probe.experiments.wayward.measure import measure
from probe.experiments.wayward.record import LITTLE, WAYWARD_JSON, WAYWARD_MD, WaywardReport
from probe.training.config import TrainConfig

__all__ = ["LITTLE", "SWEEP", "UNRELATED", "WaywardConfig", "WaywardReport", "measure", "plan", "render", "wayward"]


def plan(config: WaywardConfig, model: LoadedModel | None = None) -> tuple[dict[str, TrainConfig], LoadedModel]:
    """The runs to train, every target checked first; (run configs, model)."""
    model = model or load_model(config.model, device="cpu")
    return config.checked_run_configs(model), model


SWEEP: Sweep[WaywardConfig, WaywardReport] = Sweep(
    "wayward", lambda plan, runs, model, progress: measure(plan.settings, runs, model), (WAYWARD_JSON, WAYWARD_MD)
)
wayward = SWEEP.run
write = SWEEP.write
render = WaywardReport.to_markdown
