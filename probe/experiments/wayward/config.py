"""``probe wayward``'s grid: per seed, an unconstrained prompt and one prompt per target (an unrelated text, the
label names permuted) whose nearest tokens are pulled onto it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe.core.frames import as_splits
from probe.core.index import VocabIndex
from probe.core.models import LoadedModel
from probe.experiments.grid import Cost
from probe.experiments.sweep import OnePromptSettings, Plan
from probe.training.config import TrainConfig, check_weight
from probe.training.readable import projection_targets

UNRELATED = (
    "the old lighthouse keeper painted his wooden boat blue every spring",
    "grandmother knitted a green scarf while the kettle boiled on the stove",
)
"""Default targets, unrelated to any label set; the first that shares no word with the labels is used."""


@dataclass(frozen=True, kw_only=True)
class WaywardConfig(OnePromptSettings):
    """What ``probe wayward`` trains: per seed, an unconstrained prompt and one per target (see
    :class:`SweepSettings`; ``project_weight`` is γ and ``temperature`` τ of the projection term)."""

    text: str | None = None
    seeds: tuple[int, ...] = (0,)
    project_weight: float = 0.1
    temperature: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weight(self.project_weight, "the projection weight")
        if self.project_weight == 0:
            raise ValueError("the projection weight is 0: nothing would pull the reading; give a positive weight")
        if self.text is not None and not self.text.strip():
            raise ValueError("the target text is empty; give some words (--text 'SOME WORDS') or leave it out")

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        """The ``--quick`` look: one seed, 60 steps, the figures on 400 test rows."""
        return {"seeds": (0,), "steps": 60, "test_size": 400}

    def targets(self, labels: list[str]) -> dict[str, str]:
        """Target name -> text: ``text`` (the given text, else an unrelated default) and ``labels`` (the label
        names in an order where none keeps its place)."""
        words = {w.lower() for label in labels for w in label.replace("/", " ").split()}
        text = self.text or next((t for t in UNRELATED if not words & set(t.split())), UNRELATED[0])
        order = list(range(len(labels)))
        order = order[1:] + order[:1]  # a rotation: no label keeps its place
        return {"text": text.strip(), "labels": " ".join(labels[i] for i in order)}

    def run_configs(self, labels: list[str] | None = None) -> dict[str, TrainConfig]:
        """Run name -> training config: ``free-sN`` and ``<target>-sN`` for every seed (``labels``: the data's label
        names, read from it when not given)."""
        labels = (
            labels
            if labels is not None
            else as_splits(self.data, seed=self.seeds[0], **self.columns()).train.label_names
        )
        out = {}
        for seed in self.seeds:
            out[f"free-s{seed}"] = self.train_config(seed=seed)
            for name, text in self.targets(labels).items():
                out[f"{name}-s{seed}"] = self.train_config(
                    seed=seed,
                    project_to=f"text:{text}",
                    project_weight=self.project_weight,
                    project_temperature=self.temperature,
                )
        return out

    def checked_run_configs(self, model: LoadedModel) -> dict[str, TrainConfig]:
        """:meth:`run_configs` for the data's labels, every target checked first (a text with no usable tokens is
        refused before anything is written)."""
        splits = as_splits(self.data, seed=self.seeds[0], **self.columns())
        index = VocabIndex.for_model(model)
        for text in self.targets(splits.train.label_names).values():
            projection_targets(f"text:{text}", model, index, self.length, [])
        return self.run_configs(splits.train.label_names)

    def plan(self, out: Path, model: LoadedModel) -> Plan[Any]:
        return Plan(self, self.checked_run_configs(model), {})

    def reading_cost(self, plan: Plan[Any]) -> Cost:
        # every run's prompt scored once on the test rows
        return Cost(rows=(self.test_size or 0) * len(plan.configs))
