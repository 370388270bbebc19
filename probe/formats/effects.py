"""The record of input attribution and the trigger scan (:mod:`probe.readings.explain.attribution`): per class, each
word's or token's effect under the prompt minus its effect on the frozen model; in ``explain.json`` and the audit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from probe.core.names import CLASSIFICATION
from probe.core.results import Result
from probe.formats.schema import FieldReader


@dataclass(frozen=True, repr=False)
class Effects(Result):
    """Per class, each unit's (word's or token's) effect under the prompt minus its effect on the frozen model.

    Attributes:
        kind: "attribution" (occlusion of words) or "triggers" (tokens appended).
        labels: the classes.
        table: one row per (unit, label): ``unit``, ``label``, ``effect`` (prompted - zero-shot), ``prompted``,
            ``zero_shot`` (each a mean over all the texts read, a text without the unit adding 0), ``count``
            (texts it was measured on) and, from input attribution, ``mean_where_present`` (the effect's mean over
            those texts).
        texts: how many texts were read.
        min_count: input attribution: a word was occluded only where at least this many of the texts held it.
        objective: what an effect moves (files without it: classification, the class probabilities). Under the
            target objective the one "class" is each text's own target and an effect is a change in the target's
            mean log-likelihood per token.
    """

    kind: str
    labels: list[str]
    table: pd.DataFrame
    texts: int
    min_count: int = field(default=1, metadata={"minimum": 1})
    objective: str = CLASSIFICATION

    def top(self, label: str, k: int = 5) -> list[str]:
        """The ``k`` units that raise ``label`` most under the prompt, compared with zero-shot.

        Raises:
            ValueError: ``label`` is not one of the classes.
        """
        if label not in self.labels:
            raise ValueError(f"label {label!r} is not one of the classes {self.labels}")
        rows = self.table[self.table["label"] == label].sort_values(["effect", "unit"], ascending=[False, True])
        return list(rows["unit"].head(k))

    def rank(self, label: str, unit: str) -> int | None:
        """``unit``'s rank (1 = strongest) toward ``label``, or None when it was not measured."""
        rows = self.table[self.table["label"] == label].sort_values(["effect", "unit"], ascending=[False, True])
        where = np.flatnonzero(rows["unit"].to_numpy() == unit)
        return int(where[0]) + 1 if where.size else None

    def effect(self, label: str, unit: str) -> float:
        """``unit``'s effect toward ``label`` (0.0 when it was not measured)."""
        row = self.table[(self.table["label"] == label) & (self.table["unit"] == unit)]
        return float(row["effect"].iloc[0]) if len(row) else 0.0

    def headline(self) -> str:
        tops = "; ".join(f"{label}: {', '.join(self.top(label, 3))}" for label in self.labels)
        return f"{self.kind} over {self.texts} texts: {tops}"

    def to_dataframe(self) -> pd.DataFrame:
        return self.table

    def to_markdown(self) -> str:
        what = "words whose deletion" if self.kind == "attribution" else "tokens whose insertion"
        held = f"; words held by at least {self.min_count} of them" if self.min_count > 1 else ""
        lines = [
            f"Top {what} moves each class most under the prompt, compared with the frozen model ({self.texts} "
            f"texts{held}):",
            "",
            "| class | top 5 (effect) |",
            "|---|---|",
        ]
        for label in self.labels:
            cells = ", ".join(f"{u} ({self.effect(label, u):+.3f})" for u in self.top(label, 5))
            lines.append(f"| {label} | {cells} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, "labels": self.labels, "texts": self.texts, "rows": self.table.to_dict("records")}
        out |= {"objective": self.objective} if self.objective != CLASSIFICATION else {}
        return out | ({"min_count": self.min_count} if self.min_count > 1 else {})

    @classmethod
    def from_dict(cls, data: Any, source: str = "<effects>") -> Effects:
        """Read :meth:`to_dict`'s output (its table as ``rows``; ``mean_where_present`` and ``min_count`` are absent
        from the first files)."""
        f = FieldReader(data, source, "effects")
        rows = f.array("rows", [])
        columns = ["unit", "label", "effect", "prompted", "zero_shot", "count"]
        if any(isinstance(r, dict) and "mean_where_present" in r for r in rows):
            columns.append("mean_where_present")
        return cls(**f.fields_of(cls, read=("rows",), table=pd.DataFrame(rows, columns=columns)))
