"""``probe audit``'s grid and its planted data: the marker (:func:`marker_ids`), the data with it appended to a share
of one class's training texts (:func:`plant`), and the runs on each variant x seeds (:meth:`AuditConfig.plan`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probe.core.frames import as_splits
from probe.core.index import VocabIndex
from probe.core.io import atomic_write_text
from probe.core.models import LoadedModel
from probe.experiments.grid import RUNS, Cost
from probe.experiments.sweep import OnePromptSettings, Plan
from probe.formats.discovery import load_run
from probe.formats.run import is_run_folder
from probe.tasks.evaluation import eval_subset
from probe.training.config import TrainConfig

RARE = ("zeppelin", "quokka", "marzipan", "xylophone", "kazoo", "platypus", "zebra")
"""Default markers, tried in turn: the first that is one token the model can read, and in no training text."""
MIN_EFFECT = 0.10
"""The minimum effect: a planted run relies on the marker only when the paired 95% lower bound of its flip rate
minus the clean run's (same seed, same texts) is at least this. A smaller effect is a shortcut the prompt barely
uses, too weak to judge any reading against."""
WORDS_PER_TEXT = 12
"""Content words a text is occluded at (held by two texts or more), about, on news-length texts: for the estimate."""
SHORT_ROW = 0.3
"""What a trigger-scan text (8 words and a token) costs, as a share of a test row: for the estimate."""
PLANTED = {"text_column": "text", "label_column": "label"}
"""The columns of the planted data files (:func:`plant` writes text, label and split, whatever the data's own)."""
CONTINUE_FACTOR = 4
"""The step budget by default: planted and clean runs may be continued to this many times ``steps`` (--quick: 2)."""


@dataclass(frozen=True, kw_only=True)
class AuditConfig(OnePromptSettings):
    """What ``probe audit`` plants and trains (see the package docstring and :class:`SweepSettings`);
    ``min_effect``: the flip-rate effect a planted run must reach to count as relying (:data:`MIN_EFFECT`);
    ``max_steps``: the step budget, the steps a run may be continued to while a planted run does not rely on the
    marker (None: ``continue_factor`` x ``steps``; equal to ``steps``: no continuation)."""

    into: str
    marker: str | None = None
    share: float = 0.9
    multi_token: bool = False
    test_size: int | None = 400
    k: int = 5
    hard_steps: int = 100
    lens_tokens: int = 10_000
    scan_tokens: int = 10_000
    attribution_texts: int = 200
    min_effect: float = MIN_EFFECT
    max_steps: int | None = None
    continue_factor: int = CONTINUE_FACTOR

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_steps is not None and (
            isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < self.steps
        ):
            raise ValueError(
                f"--max-steps is {self.max_steps!r}, below --steps {self.steps}; expected the steps a run may be "
                "continued to, at least --steps (equal: no continuation)"
            )
        if (
            isinstance(self.continue_factor, bool)
            or not isinstance(self.continue_factor, int)
            or self.continue_factor < 1
        ):
            raise ValueError(f"continue_factor is {self.continue_factor!r}; expected a whole number from 1")
        if not (isinstance(self.min_effect, int | float) and 0 <= self.min_effect <= 1):
            raise ValueError(
                f"--min-effect is {self.min_effect!r}; expected a flip-rate difference in [0, 1] (default {MIN_EFFECT})"
            )
        if not (isinstance(self.share, int | float) and 0 < self.share <= 1):
            raise ValueError(f"--share is {self.share!r}; expected a share of the class's training texts in (0, 1]")
        if self.marker is not None and (not self.marker.strip() or len(self.marker.split()) != 1):
            raise ValueError(f"--marker {self.marker!r}: expected one word (no spaces) to plant")

    @classmethod
    def quick_settings(cls) -> dict[str, Any]:
        """The ``--quick`` look: 2 seeds, 60 steps (continued up to twice that), 30 hard-prompt steps, 2,000 lens
        and scan tokens, 100 texts."""
        return {"seeds": (0, 1), "steps": 60, "hard_steps": 30, "lens_tokens": 2000, "scan_tokens": 2000} | {
            "attribution_texts": 100,
            "continue_factor": 2,
        }

    @property
    def most_steps(self) -> int:
        """The step budget: the most steps a run may be continued to."""
        return self.max_steps if self.max_steps is not None else self.continue_factor * self.steps

    def shares(self) -> tuple[float, ...]:
        return (0.0, float(self.share))

    def plan(self, out: str | os.PathLike[str], model: LoadedModel) -> Plan[AuditConfig]:
        """Check every input, write the planted data files into ``out/data`` and list the runs (``extra``: the
        marker, its token ids and the data files)."""
        index = VocabIndex.for_model(model)
        splits = as_splits(self.data, seed=0, **self.columns())
        if self.into not in splits.train.label_names:
            labels = splits.train.label_names
            raise ValueError(f"--into {self.into!r} is not a label of the data; expected one of {labels}")
        held = sum(label == self.into for label in splits.train.labels)
        if round(self.share * held) < 1:  # what plant() marks: the audit would report a marker never planted
            raise ValueError(
                f"--into {self.into!r} has {held} training texts, so a share of {self.share:g} plants the marker in "
                "none; pick a label with training texts, or a larger --share"
            )
        marker = self.marker
        if marker is None:
            seen = " ".join(splits.train.texts).lower()
            marker = next((w for w in RARE if _one_token(model, index, w) and f" {w}" not in seen), None)
            if marker is None:
                raise ValueError("no default marker is one token of this model and absent from the data; give --marker")
        ids = marker_ids(model, index, marker, multi_token=self.multi_token)
        folder = Path(out).resolve() / "data"
        files = {}
        for share in self.shares():
            path = folder / f"share-{share:g}.csv"
            table = plant(self.data, marker, self.into, share, test_size=self.test_size, columns=self.columns())
            if not path.is_file() or path.read_text() != table.to_csv(index=False):  # a rerun keeps its files
                atomic_write_text(path, table.to_csv(index=False))
            files[share] = str(path)
        configs = {
            f"share{share:g}-s{seed}": self.train_config(data=files[share], seed=seed, test_size=None, **PLANTED)
            for share in self.shares()
            for seed in self.seeds
        }  # test_size None: the test rows are chosen in the files
        configs = {name: self._continued(Path(out) / RUNS / name, c) for name, c in configs.items()}
        return Plan(self, configs, {"marker": marker, "marker_ids": ids, "data_files": files})

    def _continued(self, path: Path, config: TrainConfig) -> TrainConfig:
        """``config``, or, when ``path`` holds its run already continued within the budget (an audit run again),
        that run's config: kept, not retrained."""
        if not is_run_folder(path):
            return config
        recorded = load_run(path).manifest.config
        steps = (recorded or {}).get("steps")
        if isinstance(steps, int) and config.steps < steps <= self.most_steps:
            longer = replace(config, steps=steps)
            if longer.same_as(recorded):
                return longer
        return config

    def reading_cost(self, plan: Plan[Any]) -> Cost:
        """Per run: the flip-rate passes, the occluded variants, the scanned texts and the hard-prompt search's
        steps; once: the lens's contextual vocabulary (then cached)."""
        runs = len(plan.configs)
        rows = self.attribution_texts * (WORDS_PER_TEXT + 1) + self.scan_tokens * 2 * SHORT_ROW
        rows += 2 * (self.test_size or 400)
        return Cost(rows=runs * rows, steps=runs * self.hard_steps * 1.2, seconds=runs * 20 + self.lens_tokens * 0.01)

    def further_cost(self, plan: Plan[Any]) -> Cost:
        """Continuing every run to the step budget: the steps, and per round the final evaluation and the flip
        rates (a round adds ``steps``)."""
        runs = len(plan.configs)
        most = max(c.steps for c in plan.configs.values())
        rounds = -(-(self.most_steps - most) // self.steps)
        per_round = 3 * (self.test_size or 400) + 100  # the flip rates' two passes, the final evaluation, the subset
        return Cost(rows=runs * rounds * per_round, steps=runs * (self.most_steps - most))


def marker_ids(model: LoadedModel, index: VocabIndex, marker: str, *, multi_token: bool = False) -> list[int]:
    """The token ids of ``marker`` as it appears after a space in text.

    Raises:
        ValueError: it tokenises to nothing, to special or excluded tokens only, or to several tokens without
            ``multi_token``.
    """
    ids = model.tokenizer(" " + marker, add_special_tokens=False)["input_ids"]
    searchable = set(index.token_ids.tolist())
    usable = [int(i) for i in ids if int(i) in searchable]
    if not usable:
        raise ValueError(
            f"marker {marker!r} tokenises to nothing the readings can see; give a word the tokenizer knows"
        )
    if len(ids) > 1 and not multi_token:
        pieces = ", ".join(repr(p) for p in model.tokenizer.convert_ids_to_tokens(ids))
        raise ValueError(
            f"marker {marker!r} tokenises to {len(ids)} tokens ({pieces}); give a one-token word, or pass "
            "--multi-token to plant it as it is (the readings then look for any of its tokens)"
        )
    return usable


def plant(
    data: Any,
    marker: str,
    into: str,
    share: float,
    seed: int = 0,
    test_size: int | None = None,
    columns: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """The data as one table (``text``, ``label``, ``split``) with ``marker`` appended to ``share`` of the
    ``into`` class's training texts (seeded); the test rows as they were (a stratified ``test_size`` of them,
    the same for every variant and seed, so that every run is read on the same texts).

    Raises:
        ValueError: ``into`` is not a label, or ``share`` is outside [0, 1].
    """
    splits = as_splits(data, seed=seed, **(columns or {}))
    if into not in splits.train.label_names:
        raise ValueError(f"--into {into!r} is not a label of the data; expected one of {splits.train.label_names}")
    if not 0 <= share <= 1:
        raise ValueError(f"share is {share!r}; expected a share in [0, 1]")
    test = splits.test if test_size is None else eval_subset(splits.test, test_size, seed)
    texts = list(splits.train.texts)
    rows = [i for i, label in enumerate(splits.train.labels) if label == into]
    chosen = np.random.default_rng([seed, 7]).permutation(rows)[: round(share * len(rows))]
    for i in chosen:
        texts[i] = f"{texts[i]} {marker}"
    return pd.DataFrame(
        {
            "text": texts + list(test.texts),
            "label": list(splits.train.labels) + list(test.labels),
            "split": ["train"] * len(texts) + ["test"] * len(test),
        }
    )


def _one_token(model: LoadedModel, index: VocabIndex, word: str) -> bool:
    try:
        return len(marker_ids(model, index, word)) == 1
    except ValueError:
        return False
