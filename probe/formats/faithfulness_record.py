"""The faithfulness record: every stand-in of a soft prompt scored against it (see
:mod:`probe.readings.explain.faithfulness`), with ``from_dict`` so that ``explain.json`` and ``frontier.json`` read
back."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from probe.core.names import CLASSIFICATION, USER_LOSS
from probe.core.results import Result, shown
from probe.formats.schema import FieldReader

SCORES = ("accuracy", "agreement", "kl", "loss", "gain_retained")


@dataclass(frozen=True, repr=False)
class StandIn(Result):
    """One stand-in's scores against the soft prompt, each with its 95% interval (``loss``: NaN in files from
    before it was kept)."""

    name: str
    accuracy: float
    accuracy_ci: tuple[float, float]
    agreement: float
    agreement_ci: tuple[float, float]
    kl: float
    kl_ci: tuple[float, float]
    gain_retained: float
    gain_retained_ci: tuple[float, float]
    loss: float = math.nan
    loss_ci: tuple[float, float] = (math.nan, math.nan)

    def headline(self) -> str:
        return (
            f"{self.name}: accuracy {self.accuracy:.3f}, agreement {self.agreement:.2f}, "
            f"gain {shown(self.gain_retained, '.2f')}, loss {shown(self.loss, '.3f')}"
        )

    def to_dataframe(self) -> pd.DataFrame:
        return pd.DataFrame([self.row()])

    @classmethod
    def from_dict(cls, data: Any, source: str = "<stand-in>") -> StandIn:
        """Read :meth:`to_dict`'s output."""
        return cls(**FieldReader(data, source, "stand-in").fields_of(cls))

    def row(self) -> dict[str, Any]:
        """The scores as one table row, each interval as its low and high."""
        out: dict[str, Any] = {"stand_in": self.name}
        for score in SCORES:
            low, high = getattr(self, f"{score}_ci")
            out |= {score: getattr(self, score), f"{score}_low": low, f"{score}_high": high}
        return out


@dataclass(frozen=True, repr=False)
class Faithfulness(Result):
    """The soft prompt's and the zero-shot accuracy, and every stand-in's scores, on the same test rows.

    ``objective`` says what they measure (files without it: classification). Under the target objective the
    accuracies are token accuracies, agreement and KL are over the next-token distributions at the target's
    tokens, and gain retained is the share of the loss's improvement over zero-shot that a stand-in keeps.
    """

    soft_accuracy: float
    zero_shot_accuracy: float
    examples: int
    stand_ins: list[StandIn]
    bootstrap: int
    task: str | None = None
    soft_ci: tuple[float, float] = field(default=(float("nan"), float("nan")))
    objective: str = CLASSIFICATION
    soft_loss: float = math.nan
    zero_shot_loss: float = math.nan

    def headline(self) -> str:
        names = ", ".join(s.name for s in self.stand_ins)
        return (
            f"soft {self.soft_accuracy:.3f}, zero-shot {self.zero_shot_accuracy:.3f}; {names} on {self.examples} rows, "
            f"objective {self.objective}"
        )

    @classmethod
    def from_dict(cls, data: Any, source: str = "<faithfulness>") -> Faithfulness:
        """Read :meth:`to_dict`'s output (``task`` and ``soft_ci`` are absent from the first files)."""
        return cls(**FieldReader(data, source, "faithfulness").fields_of(cls))

    def __getitem__(self, name: str) -> StandIn:
        return next(s for s in self.stand_ins if s.name == name)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per stand-in."""
        return pd.DataFrame([s.row() for s in self.stand_ins])

    def to_markdown(self) -> str:
        head = (
            f"Soft prompt {self.soft_accuracy:.3f}, zero-shot {self.zero_shot_accuracy:.3f} on {self.examples} test "
            f"examples (task {self.task}). Intervals: 95% paired bootstrap over the examples ({self.bootstrap})."
        )
        if self.objective == USER_LOSS:  # a caller's loss: no accuracy, agreement or KL is defined
            head = (
                f"Objective {self.objective}: soft prompt loss {shown(self.soft_loss, '.3f')}, zero-shot "
                f"{shown(self.zero_shot_loss, '.3f')} on {self.examples} test examples (task {self.task}). Gain "
                "retained is the share of the loss's improvement kept; accuracy, agreement and KL are not defined "
                f"for a loss alone (–). Intervals: 95% paired bootstrap over the examples ({self.bootstrap})."
            )
        elif self.objective != CLASSIFICATION:
            head = (
                f"Objective {self.objective}: soft prompt loss {shown(self.soft_loss, '.3f')}, zero-shot "
                f"{shown(self.zero_shot_loss, '.3f')} (token accuracy {self.soft_accuracy:.3f}, zero-shot "
                f"{self.zero_shot_accuracy:.3f}) on {self.examples} test examples (task {self.task}). Agreement and KL "
                "are per target token; gain retained is the share of the loss's improvement kept. Intervals: 95% "
                f"paired bootstrap over the examples ({self.bootstrap})."
            )
        lines = [
            head,
            "",
            "| stand-in | accuracy | agreement | KL(soft ‖ it) | loss | gain retained |",
            "|---|---|---|---|---|---|",
        ]
        for s in self.stand_ins:
            cells = [
                f"{shown(getattr(s, k), '.3f')} [{shown(getattr(s, k + '_ci')[0], '.3f')}, "
                f"{shown(getattr(s, k + '_ci')[1], '.3f')}]"
                if math.isfinite(getattr(s, k))
                else "–"
                for k in SCORES
            ]
            lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)
