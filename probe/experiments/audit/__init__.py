"""``probe audit``: ground truth for the readings. A known shortcut is planted, and each reading is asked whether
it finds it.

1. **The planted shortcut** (:mod:`.config`). From the labelled data, one train/test split; a marker word is
   appended to a share s of one class's *training* texts (s = 0 for the clean variant). Test texts stay clean.
   Prompts are trained on each variant over seeds.
2. **The ground truth, per run** (:mod:`.measure`). The flip rate: among the other classes' test texts, the share
   predicted as the planted class once the marker is appended and not before. A planted run *relies* on the
   marker when the paired 95% lower bound of its flip rate minus the clean run's of the same seed (over the same
   texts) is at least the minimum effect (:data:`.config.MIN_EFFECT`, 0.10). **The verdict**: with fewer than
   two relying runs it is *inconclusive* (the prompts did not learn the marker): the report gives the flip rates
   and what to change, and judges no reading. **Making the plant take** (:mod:`.continuation`): while a planted
   run does not rely, every run, planted and clean, is trained on from its last snapshot in rounds of ``steps``
   (same seeds, same extra steps) until every planted run relies or the step budget is spent (``max_steps``; by
   default 4 x ``steps``, --quick 2 x); the report gives each run's final steps and why training stopped.
3. **The readings**, each asked whether it finds the marker: the nearest tokens, the layer lens, the hard prompt,
   input attribution and the trigger scan. Per reading: the detection rate on relying runs and the false-alarm
   rate on the others, each with a Clopper-Pearson interval over runs, and the Spearman correlation of its
   strength with the flip rate (published as a finding only when the verdict is conclusive).

The record is :class:`.record.AuditReport` (``audit.json``, ``audit.md``), the figure :func:`.figure.audit_figure`
(``audit.html``), the dashboard's tables :mod:`.table`.
"""

from __future__ import annotations

from probe.experiments.audit.config import MIN_EFFECT, RARE, AuditConfig, marker_ids, plant
from probe.experiments.audit.continuation import train_until_it_takes
from probe.experiments.audit.measure import measure
from probe.experiments.audit.record import AUDIT_JSON, AUDIT_MD, READINGS, AuditReport
from probe.experiments.sweep import Sweep

__all__ = [
    "MIN_EFFECT",
    "RARE",
    "READINGS",
    "SWEEP",
    "AuditConfig",
    "AuditReport",
    "audit",
    "marker_ids",
    "plant",
    "render",
]

SWEEP: Sweep[AuditConfig, AuditReport] = Sweep(
    "audit",
    lambda plan, runs, model, progress: measure(plan, runs, model, progress=progress),
    (AUDIT_JSON, AUDIT_MD),
    (("audit.html", "probe.experiments.audit.figure.audit_figure"),),
    train=train_until_it_takes,
)
audit = SWEEP.run
write = SWEEP.write
render = AuditReport.to_markdown
