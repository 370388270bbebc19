"""The ``probe wayward`` report (``wayward.json`` beside ``wayward.md``): what it costs a prompt to read as a
target it does not do, one entry per target."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from probe.core.io import to_jsonable
from probe.core.results import Result
from probe.formats.schema import Fields, read_json

WAYWARD_JSON = "wayward.json"
WAYWARD_MD = "wayward.md"
WAYWARD_FORMAT = 1
REQUIRED = ("target", "text", "runs", "soft_accuracy", "cost", "cost_ci", "reads_as_target")


@dataclass(frozen=True, repr=False)
class WaywardReport(Result):
    """The unconstrained prompts' accuracy (``free_accuracy``, mean over seeds), one dict per target (``targets``:
    at least :data:`REQUIRED`; ``cost`` is the paired accuracy drop against the unconstrained prompt of the same
    seed, in accuracy units), the closing sentence (``conclusion``) and the context."""

    free_accuracy: float
    targets: list[dict[str, Any]]
    conclusion: str
    context: dict[str, Any] = field(default_factory=dict)
    format: int = WAYWARD_FORMAT

    def headline(self) -> str:
        return self.conclusion

    def to_dataframe(self) -> pd.DataFrame:
        """One row per target."""
        return pd.DataFrame(self.targets)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "format": self.format,
                "free_accuracy": self.free_accuracy,
                "targets": self.targets,
                "conclusion": self.conclusion,
                "context": self.context,
            }
        )

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<wayward>") -> WaywardReport:
        """Read ``wayward.json``.

        Raises:
            ValueError: naming the field that is missing or of the wrong type.
        """
        f = Fields(data, source, "wayward report")
        f.unknown({"format", "free_accuracy", "targets", "conclusion", "context"})
        return cls(
            free_accuracy=f.number("free_accuracy"),
            targets=f.records("targets", REQUIRED),
            conclusion=f.text("conclusion"),
            context=f.mapping("context", {}),
        )


def read_wayward(path: str | Path) -> WaywardReport:
    """The report in ``path`` (a ``wayward.json``)."""
    return WaywardReport.from_dict(read_json(path, what="wayward report"), source=str(path))
