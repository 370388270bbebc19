"""The records of what a prompt does: position importance, the layer lens, and ``explain.json`` that holds both
with the hard prompt. One owner each; the library writes them (:func:`probe.readings.explain.explain`) and the
dashboard reads them back through :meth:`ExplainRecord.from_dict`, which also reads the first format.

```
RUN/explain.json              the latest readings (ExplainRecord)
RUN/explain/step-N.json       one per measured snapshot (the dashboard follows its step slider)
```
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from probe.core.names import CLASSIFICATION
from probe.core.results import Result
from probe.formats.effects import Effects
from probe.formats.faithfulness_record import Faithfulness
from probe.formats.hard_prompt import HardPrompt
from probe.formats.lens_record import LayerLens, LensRow
from probe.formats.schema import FieldReader, read_json

__all__ = ["EXPLAIN_FILE", "ExplainRecord", "ImportanceTable", "LayerLens", "LensRow", "PositionImportance"]

EXPLAIN_FILE = "explain.json"
EXPLAIN_STEPS = "explain"
EXPLAIN_FORMAT = 2
_STEP_FILE = re.compile(r"^step-(\d+)\.json$")

VARIANTS = ("removed", "nearest", "mean")
"""Position importance's variants: the position removed, read as its nearest token, as the mean vocabulary row."""


@dataclass(frozen=True)
class PositionImportance:
    """What happens to accuracy and loss when one position is taken out or read as a word.

    Under the target objective the accuracies are token accuracies (the share of target tokens that are the
    next-token argmax) and the losses mean negative log-likelihoods of the targets. Each ``*_loss_rise`` is the
    variant's mean loss minus the soft prompt's, with its paired interval (NaN in files from before it was kept).
    """

    position: int
    nearest_token: str
    removed_accuracy: float
    removed_loss: float
    nearest_accuracy: float
    nearest_loss: float
    mean_accuracy: float
    mean_loss: float
    removed_drop: float
    removed_drop_ci: tuple[float, float]
    nearest_drop: float
    nearest_drop_ci: tuple[float, float]
    mean_drop: float
    mean_drop_ci: tuple[float, float]
    rank: int
    removed_loss_rise: float = math.nan
    removed_loss_rise_ci: tuple[float, float] = (math.nan, math.nan)
    nearest_loss_rise: float = math.nan
    nearest_loss_rise_ci: tuple[float, float] = (math.nan, math.nan)
    mean_loss_rise: float = math.nan
    mean_loss_rise_ci: tuple[float, float] = (math.nan, math.nan)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> PositionImportance:
        """Read one position (errors name ``source``); what the first files lacked is NaN."""
        lacked: dict[str, Any] = {f"{v}_{part}": math.nan for v in VARIANTS for part in ("accuracy", "loss", "drop")}
        lacked |= {f"{v}_drop_ci": (math.nan, math.nan) for v in VARIANTS} | {"rank": 0, "nearest_token": ""}
        return cls(**FieldReader(data, source, "position importance").fields_of(cls, defaults=lacked))


@dataclass(frozen=True, repr=False)
class ImportanceTable(Result):
    """Per-position importance and faithfulness of a prompt, ranked (1 = removing it hurts most)."""

    soft_accuracy: float
    soft_loss: float
    examples: int
    positions: list[PositionImportance]
    bootstrap: int
    task: str | None = None
    """The task the accuracies were measured under (the task form; None in files from before it was recorded)."""
    objective: str = CLASSIFICATION
    """What the accuracies and losses measure (:data:`probe.core.names.OBJECTIVES`; files without it: classification).
    Under the target objective the ranking is by the loss's rise when the position is removed."""

    def headline(self) -> str:
        return (
            f"{len(self.positions)} positions, soft {self.soft_accuracy:.3f} (loss {self.soft_loss:.3f}) on "
            f"{self.examples} rows, task {self.task}, objective {self.objective}"
        )

    def to_dataframe(self) -> pd.DataFrame:
        """One row per position, each interval as its low and high."""
        rows = []
        for p in self.positions:
            row = asdict(p)
            for name in VARIANTS:
                for part in ("drop", "loss_rise"):
                    low, high = row.pop(f"{name}_{part}_ci")
                    row[f"{name}_{part}_low"], row[f"{name}_{part}_high"] = low, high
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return asdict(self)

    def to_csv(self) -> str:
        """:meth:`to_dataframe` as CSV text."""
        return self.to_dataframe().to_csv(index=False)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<importance>") -> ImportanceTable:
        """Read :meth:`to_dict`'s output."""
        lacked = {"soft_accuracy": math.nan, "soft_loss": math.nan, "examples": 0, "bootstrap": 0}
        return cls(**FieldReader(data, source, "importance table").fields_of(cls, defaults=lacked))

    def to_markdown(self) -> str:
        """A readable table, most important position first."""
        if self.objective != CLASSIFICATION:
            return self._loss_markdown()
        lines = [
            f"Soft prompt: accuracy {self.soft_accuracy:.3f}, loss {self.soft_loss:.3f} on {self.examples} examples. "
            "Drops are soft minus variant, with 95% paired bootstrap intervals over the examples.",
            "",
            "| rank | pos | nearest token | removed: acc (drop) | nearest token: acc (drop) | mean vocab: acc (drop) |",
            "|---:|---:|---|---|---|---|",
        ]
        for p in sorted(self.positions, key=lambda x: x.rank):
            lines.append(
                f"| {p.rank} | {p.position} | {p.nearest_token} | {p.removed_accuracy:.3f} ({p.removed_drop:+.3f}) "
                f"| {p.nearest_accuracy:.3f} ({p.nearest_drop:+.3f}) | {p.mean_accuracy:.3f} ({p.mean_drop:+.3f}) |"
            )
        return "\n".join(lines)

    def _loss_markdown(self) -> str:
        """The table by loss (the target objective): each variant's loss and its rise with its interval."""
        lines = [
            f"Objective {self.objective}: soft prompt loss {self.soft_loss:.3f}"
            + ("" if math.isnan(self.soft_accuracy) else f", token accuracy {self.soft_accuracy:.3f}")
            + f" on {self.examples} examples. Rises are variant minus soft, with 95% paired bootstrap intervals over "
            "the examples.",
            "",
            "| rank | pos | nearest token | removed: loss (rise) | nearest: loss (rise) | mean vocab: loss (rise) |",
            "|---:|---:|---|---|---|---|",
        ]
        for p in sorted(self.positions, key=lambda x: x.rank):
            cells = []
            for v in VARIANTS:
                low, high = getattr(p, f"{v}_loss_rise_ci")
                rise = getattr(p, f"{v}_loss_rise")
                cells.append(f"{getattr(p, f'{v}_loss'):.3f} ({rise:+.3f} [{low:+.3f}, {high:+.3f}])")
            lines.append(f"| {p.rank} | {p.position} | {p.nearest_token} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


NOT_FOR_A_PREFIX = (
    "Not read: the prompt is a prefix (keys and values at every layer), which no input tokens stand in for; its "
    "positions are read per layer above (nearest tokens: each layer's key and value as the nearest real token's) and "
    "by `probe report`."
)


@dataclass(frozen=True, repr=False)
class ExplainRecord(Result):
    """Everything ``probe explain`` measured on one prompt: position importance, the hard prompt, the layer lens.

    Attributes:
        source: the run folder or prompt file measured.
        step: the snapshot's step (None for a prompt file).
        model: the model's canonical name.
        importance / hard_prompt / lens: the three readings (no hard prompt and no lens for a prefix: None).
        faithfulness: every stand-in (nearest tokens, the hard prompt) scored against the soft prompt.
        attribution / triggers: input attribution and the trigger scan, when asked for.
    """

    source: str
    step: int | None
    model: str
    importance: ImportanceTable
    hard_prompt: HardPrompt | None
    lens: LayerLens | None
    faithfulness: Faithfulness | None = None
    attribution: Effects | None = None
    triggers: Effects | None = None
    format: int = EXPLAIN_FORMAT

    @property
    def task(self) -> str | None:
        """The task every reading of the record was measured under."""
        return self.importance.task

    @property
    def objective(self) -> str:
        """What every reading of what the prompt does measured (:data:`probe.core.names.OBJECTIVES`)."""
        return self.importance.objective

    def headline(self) -> str:
        hard = "" if self.hard_prompt is None else f", hard prompt {self.hard_prompt.hard_prompt_accuracy:.3f}"
        return (
            f"{self.source!r} step {self.step}, task {self.task}: soft {self.soft_accuracy:.3f}{hard}, nearest tokens "
            f"{self.discretised_accuracy:.3f}"
        )

    def to_dataframe(self) -> pd.DataFrame:
        """The importance table, one row per position (the hard prompt's and the lens's: their own)."""
        return self.importance.to_dataframe()

    def to_markdown(self) -> str:
        """The three readings, each under its heading."""
        step = f", step {self.step}" if self.step is not None else ""
        return "\n\n".join(
            [
                f"# What the prompt does: {self.source}{step}",
                f"Measured under the task it was trained on: {self.task} (objective {self.objective}).",
                "## Which positions matter, and is each reading faithful?",
                self.importance.to_markdown(),
                "## The best real-token prompt",
                NOT_FOR_A_PREFIX if self.hard_prompt is None else self.hard_prompt.to_markdown(),
                *(
                    ["## Does each stand-in do what the prompt does?", self.faithfulness.to_markdown()]
                    if self.faithfulness
                    else []
                ),
                "## Layer lens",
                NOT_FOR_A_PREFIX if self.lens is None else self.lens.to_markdown(),
                *(["## Input attribution", self.attribution.to_markdown()] if self.attribution else []),
                *(["## Trigger scan", self.triggers.to_markdown()] if self.triggers else []),
            ]
        )

    @property
    def test_examples(self) -> int:
        """Test rows the accuracies were measured on."""
        return self.importance.examples

    @property
    def soft_accuracy(self) -> float:
        """The soft prompt's accuracy on those rows."""
        return self.importance.soft_accuracy

    @property
    def discretised_accuracy(self) -> float:
        """The accuracy with every position read as its nearest token (a prefix's: per layer)."""
        if self.hard_prompt is not None:
            return self.hard_prompt.discretised_accuracy
        stand_ins = self.faithfulness.stand_ins if self.faithfulness else []
        return next((s.accuracy for s in stand_ins if s.name == "discretised"), math.nan)

    @property
    def zero_shot_accuracy(self) -> float:
        """The frozen model's accuracy."""
        if self.hard_prompt is not None:
            return self.hard_prompt.zero_shot_accuracy
        return self.faithfulness.zero_shot_accuracy if self.faithfulness else math.nan

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``explain.json``: the headline figures, then the three readings."""
        return {
            "format": self.format,
            "source": self.source,
            "step": self.step,
            "model": self.model,
            "task": self.task,
            "objective": self.objective,
            "test_examples": self.test_examples,
            "soft_accuracy": self.soft_accuracy,
            "discretised_accuracy": self.discretised_accuracy,
            "zero_shot_accuracy": self.zero_shot_accuracy,
            "importance": self.importance.to_dict(),
            "hard_prompt": None if self.hard_prompt is None else self.hard_prompt.to_dict(),
            "lens": None if self.lens is None else self.lens.to_dict(),
            "faithfulness": None if self.faithfulness is None else self.faithfulness.to_dict(),
            **{k: v.to_dict() for k, v in (("attribution", self.attribution), ("triggers", self.triggers)) if v},
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<explain>") -> ExplainRecord:
        """Read an explain record of either format (the first kept importance and the lens as flat lists).

        Raises:
            ValueError: naming the field that is missing or of the wrong type.
        """
        f = FieldReader(data, source, "explain record")
        known = {
            "format",
            "source",
            "step",
            "model",
            "task",
            "objective",
            "test_examples",
            "soft_accuracy",
            "discretised_accuracy",
            "zero_shot_accuracy",
            "importance",
            "hard_prompt",
            "lens",
            "faithfulness",
            "attribution",
            "triggers",
            "layer_lens",
            "lens_holds_until",
        }
        f.unknown(known)
        raw_hard = f.mapping("hard_prompt", None, optional=True)  # None: a prefix's record
        hard = None if raw_hard is None else HardPrompt.from_dict(raw_hard, source=source)
        raw = f.data.get("importance")
        lens: LayerLens | None
        if isinstance(raw, list):  # format 1: the positions, with the headline figures beside them
            positions = [PositionImportance.from_dict(p, source) for p in raw]
            importance = ImportanceTable(
                soft_accuracy=f.number("soft_accuracy"),
                soft_loss=math.nan,
                examples=f.integer("test_examples", 0, minimum=0),
                positions=positions,
                bootstrap=0,
            )
            rows = [LensRow.from_dict(r, source) for r in f.array("layer_lens", [])]
            tokens = [p.nearest_token for p in sorted(positions, key=lambda p: p.position)]
            lens = LayerLens(
                rows=rows,
                input_tokens=tokens,
                holds_until=list(f.array("lens_holds_until", [])),
                layers=1 + max((r.layer for r in rows), default=-1),
                texts=0,
            )
        else:
            importance = ImportanceTable.from_dict(f.mapping("importance"), source)
            raw_lens = f.mapping("lens", None, optional=True)
            lens = None if raw_lens is None else LayerLens.from_dict(raw_lens, source)
        raw_faith = f.mapping("faithfulness", None, optional=True)
        attribution, triggers = (f.mapping(k, None, optional=True) for k in ("attribution", "triggers"))
        return cls(
            attribution=None if attribution is None else Effects.from_dict(attribution, source),
            triggers=None if triggers is None else Effects.from_dict(triggers, source),
            faithfulness=None if raw_faith is None else Faithfulness.from_dict(raw_faith, source),
            source=f.text("source", source),
            step=f.integer("step", None, optional=True, minimum=0),
            model=f.text("model", "" if hard is None else hard.model),
            importance=importance,
            hard_prompt=hard,
            lens=lens,
        )


def explain_path(run_folder: str | Path, step: int | None = None) -> Path:
    """Where the record of ``step`` goes in a run folder (``explain/step-N.json``), or the latest one."""
    folder = Path(run_folder)
    return folder / EXPLAIN_FILE if step is None else folder / EXPLAIN_STEPS / f"step-{step:08d}.json"


def measured_steps(run_folder: str | Path) -> list[int]:
    """The steps with a record under ``explain/``, ascending (stray files are ignored)."""
    folder = Path(run_folder) / EXPLAIN_STEPS
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name)) and p.is_file())


def read_explain(path: str | Path) -> ExplainRecord:
    """The explain record in ``path``.

    Raises:
        ValueError: not a record probe wrote (naming the field that is wrong).
    """
    return ExplainRecord.from_dict(read_json(path, what="explain record"), source=str(path))
