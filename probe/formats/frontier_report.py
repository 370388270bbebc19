"""The ``probe frontier`` report (``frontier.json`` beside ``frontier.md``): soft accuracy against the faithfulness
of the nearest-token reading, one entry per run of the sweep over the faithfulness weight λ."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from probe.core.io import to_jsonable
from probe.core.results import Result
from probe.formats.schema import Fields, read_json

FRONTIER_JSON = "frontier.json"
FRONTIER_MD = "frontier.md"
FRONTIER_FORMAT = 1
REQUIRED = (
    "run",
    "weight",
    "seed",
    "soft_accuracy",
    "discretised_accuracy",
    "agreement",
    "kl",
    "gain_retained",
    "pareto",
)


@dataclass(frozen=True, repr=False)
class FrontierReport(Result):
    """The sweep's runs (``runs``: one dict each, with at least :data:`REQUIRED`), the zero-shot accuracy, the
    aim it was measured against, and the context (model, data, steps, ...)."""

    zero_shot_accuracy: float
    runs: list[dict[str, Any]]
    context: dict[str, Any] = field(default_factory=dict)
    aim: dict[str, Any] = field(default_factory=dict)
    format: int = FRONTIER_FORMAT

    def headline(self) -> str:
        pareto = sum(bool(r["pareto"]) for r in self.runs)
        return f"{len(self.runs)} runs, zero-shot {self.zero_shot_accuracy:.3f}, {pareto} on the Pareto set"

    def to_dataframe(self) -> pd.DataFrame:
        """One row per run."""
        return pd.DataFrame(self.runs)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(
            {
                "format": self.format,
                "zero_shot_accuracy": self.zero_shot_accuracy,
                "runs": self.runs,
                "aim": self.aim,
                "context": self.context,
            }
        )

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<frontier>") -> FrontierReport:
        """Read ``frontier.json``.

        Raises:
            ValueError: naming the field that is missing or of the wrong type.
        """
        f = Fields(data, source, "frontier report")
        f.unknown({"format", "zero_shot_accuracy", "runs", "aim", "context"})
        return cls(
            zero_shot_accuracy=f.number("zero_shot_accuracy"),
            runs=f.records("runs", REQUIRED),
            aim=f.mapping("aim", {}),
            context=f.mapping("context", {}),
        )


def read_frontier(path: str | Path) -> FrontierReport:
    """The report in ``path`` (a ``frontier.json``)."""
    return FrontierReport.from_dict(read_json(path, what="frontier report"), source=str(path))
