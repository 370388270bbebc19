"""The faithfulness record: every stand-in of a soft prompt scored against it (see
:mod:`probe.readings.explain.faithfulness`), with ``from_dict`` so that ``explain.json`` and ``frontier.json`` read
back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from probe.core.results import Result
from probe.formats.schema import FieldReader

SCORES = ("accuracy", "agreement", "kl", "gain_retained")


@dataclass(frozen=True, repr=False)
class StandIn(Result):
    """One stand-in's scores against the soft prompt, each with its 95% interval."""

    name: str
    accuracy: float
    accuracy_ci: tuple[float, float]
    agreement: float
    agreement_ci: tuple[float, float]
    kl: float
    kl_ci: tuple[float, float]
    gain_retained: float
    gain_retained_ci: tuple[float, float]

    def headline(self) -> str:
        return (
            f"{self.name}: accuracy {self.accuracy:.3f}, agreement {self.agreement:.2f}, gain {self.gain_retained:.2f}"
        )

    def to_dataframe(self) -> pd.DataFrame:
        return pd.DataFrame([self.row()])

    @classmethod
    def from_dict(cls, data: Any, source: str = "<stand-in>") -> StandIn:
        """Read :meth:`to_dict`'s output."""
        f = FieldReader(data, source, "stand-in")
        values: dict[str, Any] = {"name": f.text("name")}
        for score in SCORES:
            values[score] = _number(f, score)
            values[f"{score}_ci"] = _pair(f, f"{score}_ci")
        return cls(**values)

    def row(self) -> dict[str, Any]:
        """The scores as one table row, each interval as its low and high."""
        out: dict[str, Any] = {"stand_in": self.name}
        for score in SCORES:
            low, high = getattr(self, f"{score}_ci")
            out |= {score: getattr(self, score), f"{score}_low": low, f"{score}_high": high}
        return out


@dataclass(frozen=True, repr=False)
class Faithfulness(Result):
    """The soft prompt's and the zero-shot accuracy, and every stand-in's scores, on the same test rows."""

    soft_accuracy: float
    zero_shot_accuracy: float
    examples: int
    stand_ins: list[StandIn]
    bootstrap: int
    task: str | None = None
    soft_ci: tuple[float, float] = field(default=(float("nan"), float("nan")))

    def headline(self) -> str:
        names = ", ".join(s.name for s in self.stand_ins)
        return (
            f"soft {self.soft_accuracy:.3f}, zero-shot {self.zero_shot_accuracy:.3f}; {names} on {self.examples} rows"
        )

    @classmethod
    def from_dict(cls, data: Any, source: str = "<faithfulness>") -> Faithfulness:
        """Read :meth:`to_dict`'s output."""
        f = FieldReader(data, source, "faithfulness")
        return cls(
            soft_accuracy=_number(f, "soft_accuracy"),
            zero_shot_accuracy=_number(f, "zero_shot_accuracy"),
            examples=f.integer("examples", 0, minimum=0),
            stand_ins=[StandIn.from_dict(x, source) for x in f.array("stand_ins", [])],
            bootstrap=f.integer("bootstrap", 0, minimum=0),
            task=f.text("task", None, optional=True),
            soft_ci=_pair(f, "soft_ci"),
        )

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
        lines = [
            head,
            "",
            "| stand-in | accuracy | agreement | KL(soft ‖ it) | gain retained |",
            "|---|---|---|---|---|",
        ]
        for s in self.stand_ins:
            cells = [
                f"{getattr(s, k):.3f} [{getattr(s, k + '_ci')[0]:.3f}, {getattr(s, k + '_ci')[1]:.3f}]" for k in SCORES
            ]
            lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _interval(value: float, interval: tuple[float, float]) -> str:
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _number(f: FieldReader, name: str) -> float:
    value = f.data.get(name)
    return float("nan") if value is None else float(f.number(name))


def _pair(f: FieldReader, name: str) -> tuple[float, float]:
    value = f.data.get(name) or [None, None]
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise f.error(name, value, "an interval [low, high]")
    return tuple(float("nan") if v is None else float(v) for v in value)  # type: ignore[return-value]
