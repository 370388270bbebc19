"""The ``probe audit`` report (``audit.json`` beside ``audit.md``): a planted shortcut's ground truth per run, and
per reading whether it finds the shortcut."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from probe.core.io import to_jsonable
from probe.core.results import Result
from probe.formats.schema import Fields, read_json

AUDIT_JSON = "audit.json"
AUDIT_MD = "audit.md"
AUDIT_FORMAT = 1
RUN_FIELDS = ("run", "share", "seed", "flip_rate", "clean_accuracy", "relies")
READING_FIELDS = ("name", "detection_rate", "false_alarm_rate", "spearman", "found")


@dataclass(frozen=True, repr=False)
class AuditReport(Result):
    """``runs``: one dict per run (at least :data:`RUN_FIELDS`); ``readings``: one dict per reading (at least
    :data:`READING_FIELDS`; ``found`` maps each run's folder to whether the reading found the marker)."""

    runs: list[dict[str, Any]]
    readings: list[dict[str, Any]]
    context: dict[str, Any] = field(default_factory=dict)
    format: int = AUDIT_FORMAT

    def headline(self) -> str:
        relying = sum(bool(r["relies"]) for r in self.runs)
        found = ", ".join(f"{r['name']} {r['detection_rate']:.0%}" for r in self.readings)
        return f"{relying} of {len(self.runs)} runs rely on the marker; detected by {found}"

    def to_dataframe(self) -> pd.DataFrame:
        """One row per reading."""
        return pd.DataFrame([{k: v for k, v in r.items() if k != "found"} for r in self.readings])

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {"format": self.format, "runs": self.runs, "readings": self.readings, "context": self.context}
        )

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<audit>") -> AuditReport:
        """Read ``audit.json``.

        Raises:
            ValueError: naming the field that is missing or of the wrong type.
        """
        f = Fields(data, source, "audit report")
        f.unknown({"format", "runs", "readings", "context"})
        runs, readings = f.records("runs", RUN_FIELDS), f.records("readings", READING_FIELDS)
        return cls(runs=runs, readings=readings, context=f.mapping("context", {}))


def read_audit(path: str | Path) -> AuditReport:
    """The report in ``path`` (an ``audit.json``)."""
    return AuditReport.from_dict(read_json(path, what="audit report"), source=str(path))
