"""Readings of what a prompt does, not only where it sits: position importance, the best real-token prompt,
and a layer lens.

- :func:`importance`: accuracy and loss with each position removed, replaced by its nearest token's embedding
  (does that position's nearest-token reading keep what it does?), or replaced by the mean vocabulary
  embedding (a neutral control). Drops come with paired bootstrap intervals over the evaluation examples.
- :func:`harden`: projected-gradient discrete optimisation in the style of PEZ (Wen et al. 2023). A
  continuous prompt is projected to its nearest tokens for every forward pass, and the gradient taken there
  updates the continuous copy. It starts from the soft prompt's nearest tokens and keeps the best prompt on
  a held-out slice of the training data, so that prompt is never worse there than the start.
- :func:`layer_lens`: every position's hidden state at every layer, read against a per-layer contextual
  vocabulary (each token's hidden state when the model reads it alone, between its special tokens). For
  causal LMs it also gives the logit lens (final norm and unembedding).

:class:`Readout` holds what the three share: the model, its index, the task settings and the data.
``Readout.from_run`` builds it from a run's manifest.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from probe.data import DataSplits, LabelledData, train_test
from probe.evaluation import zero_shot_accuracy
from probe.index import VocabIndex
from probe.models import LoadedModel, load_model
from probe.runs import Run
from probe.softprompt import SoftPrompt, check_vectors
from probe.tasks import Task, make_task, prompt_parameter, wrap_with_prompt

logger = logging.getLogger(__name__)


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="pass", leave=False, disable=not enabled)


# ----------------------------------------------------------------------------------------------- context


@dataclass
class Readout:
    """The model, its vocabulary index, the task's settings and the data that every reading uses.

    Attributes:
        model: the model the prompt belongs to.
        index: its vocabulary index.
        labels: the class labels.
        splits: train and test data (accuracies are on the test split).
        max_length / temperature: the task's settings, as in training.
    """

    model: LoadedModel
    index: VocabIndex
    labels: list[str]
    splits: DataSplits
    max_length: int = 128
    temperature: float = 0.05
    _tasks: dict[int, Task] = field(default_factory=dict, repr=False)

    @classmethod
    def from_run(cls, run: Run, model: LoadedModel | None = None) -> Readout:
        """The readout a run was trained with: its model, data file, split, labels and task settings.

        Raises:
            ValueError: the run records no data (e.g. a run another tool wrote): pass ``data`` to
                :meth:`from_data` instead.
        """
        config = run.manifest.get("config") or {}
        if not config.get("data"):
            raise ValueError(
                f"run '{run.path}' records no training data; give the data file (probe explain --data FILE)"
            )
        splits = train_test(
            config["data"],
            text_column=config.get("text_column", "text"),
            label_column=config.get("label_column", "label"),
            seed=int(config.get("seed", 0)),
        )
        model = model or load_model(run.manifest.get("model") or "default")
        return cls(
            model=model,
            index=VocabIndex.for_model(model),
            labels=splits.train.label_names,
            splits=splits,
            max_length=int(config.get("max_length", 128)),
            temperature=float(config.get("temperature", 0.05)),
        )

    @classmethod
    def from_data(cls, model: LoadedModel, data: str | os.PathLike[str], *, seed: int = 0) -> Readout:
        """A readout for any prompt of ``model`` on a labelled data file (its ``split`` column if it has one)."""
        splits = train_test(data, seed=seed)
        return cls(model=model, index=VocabIndex.for_model(model), labels=splits.train.label_names, splits=splits)

    def task(self, length: int) -> Task:
        """A task whose PEFT wrapper holds a prompt of ``length`` positions (one per length, reused)."""
        if length not in self._tasks:
            vectors = np.zeros((length, self.model.dim), np.float32)
            self._tasks[length] = make_task(
                self.model,
                wrap_with_prompt(self.model, vectors),
                self.labels,
                max_length=self.max_length,
                temperature=self.temperature,
            )
        return self._tasks[length]

    def scores(self, vectors: np.ndarray, data: LabelledData) -> np.ndarray:
        """float [N, L]: the label scores of every example with the prompt set to ``vectors`` (one batched pass)."""
        vectors = check_vectors(vectors)
        if vectors.shape[1] != self.model.dim:
            raise ValueError(
                f"prompt has dim {vectors.shape[1]}, model '{self.model.name}' has dim {self.model.dim}; "
                "load the model the prompt was trained on"
            )
        task = self.task(vectors.shape[0])
        weight = prompt_parameter(task.peft_model)
        with torch.no_grad():
            weight.copy_(torch.from_numpy(vectors).to(weight.device, weight.dtype))
        return task.score_all(data.texts)

    def outcome(self, vectors: np.ndarray, data: LabelledData) -> tuple[np.ndarray, np.ndarray]:
        """(correct [N] as 0/1, loss [N]) of every example with the prompt set to ``vectors``."""
        scores = self.scores(vectors, data)
        correct = (scores.argmax(1) == np.asarray(data.targets)).astype(np.float64)
        return correct, self.task(vectors.shape[0]).example_losses(scores, data.targets)

    def nearest_ids(self, vectors: np.ndarray) -> np.ndarray:
        """int64 [p]: each row's nearest searchable token by cosine."""
        return self.index.search(vectors, 1)[1][:, 0]

    def zero_shot(self) -> float:
        """The frozen model's accuracy on the test split (cached)."""
        test = self.splits.test
        return zero_shot_accuracy(self.task(1), test.texts, test.targets)


def _bootstrap_drop(base: np.ndarray, variant: np.ndarray, draws: np.ndarray) -> tuple[float, float]:
    """95% paired percentile interval of mean(base - variant); ``draws`` are resampled example indices."""
    diff = base - variant
    means = diff[draws].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _to_json(obj: Any) -> str:
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        if isinstance(x, np.generic):
            return clean(x.item())
        return x

    return json.dumps(clean(obj), indent=2)


# ---------------------------------------------------------------------------------------------- importance


@dataclass(frozen=True)
class PositionImportance:
    """What happens to accuracy and loss when one position is taken out or read as a word."""

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


@dataclass(frozen=True)
class ImportanceTable:
    """Per-position importance and faithfulness of a prompt, ranked (1 = removing it hurts most)."""

    soft_accuracy: float
    soft_loss: float
    examples: int
    positions: list[PositionImportance]
    bootstrap: int

    def to_dataframe(self) -> pd.DataFrame:
        """One row per position."""
        rows = []
        for p in self.positions:
            row = asdict(p)
            for name in ("removed", "nearest", "mean"):
                low, high = row.pop(f"{name}_drop_ci")
                row[f"{name}_drop_low"], row[f"{name}_drop_high"] = low, high
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return asdict(self)

    def to_json(self) -> str:
        """JSON text."""
        return _to_json(self.to_dict())

    def to_markdown(self) -> str:
        """A readable table, most important position first."""
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


def importance(
    prompt: SoftPrompt | np.ndarray,
    readout: Readout,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> ImportanceTable:
    """Per position i: accuracy and mean loss with i removed, with i as its nearest token, with i as the mean
    vocabulary embedding; the drops from the soft prompt with paired bootstrap intervals; a ranking.

    Each variant is one batched pass over the test split (3p + 1 passes in all).

    Raises:
        ValueError: a prompt of another dimension than the model's.
    """
    vectors = check_vectors(prompt.vectors if isinstance(prompt, SoftPrompt) else prompt)
    data = readout.splits.test
    p = vectors.shape[0]
    bar = _progress(3 * p + 1, "importance", progress)
    soft_correct, soft_loss = readout.outcome(vectors, data)
    bar.update(1)
    nearest = readout.nearest_ids(vectors)
    mean_row = readout.model.embeddings_numpy()[readout.index.token_ids].mean(axis=0)
    draws = np.random.default_rng(seed).integers(0, len(data), size=(bootstrap, len(data)))
    rows = []
    for i in range(p):
        variants = {}
        if p > 1:
            variants["removed"] = readout.outcome(np.delete(vectors, i, axis=0), data)
        else:  # the prompt one shorter is no prompt: the frozen model
            variants["removed"] = _no_prompt_outcome(readout, data)
        for name, row in (("nearest", readout.model.embeddings_numpy()[nearest[i]]), ("mean", mean_row)):
            changed = vectors.copy()
            changed[i] = row
            variants[name] = readout.outcome(changed, data)
        bar.update(3)
        values: dict[str, Any] = {}
        for name, (correct, loss) in variants.items():
            values[f"{name}_accuracy"] = float(correct.mean())
            values[f"{name}_loss"] = float(loss.mean())
            values[f"{name}_drop"] = float(soft_correct.mean() - correct.mean())
            values[f"{name}_drop_ci"] = _bootstrap_drop(soft_correct, correct, draws)
            values[f"_{name}_loss_rise"] = float(loss.mean() - soft_loss.mean())
        rows.append((i, values))
    bar.close()
    order = sorted(range(p), key=lambda i: (-rows[i][1]["removed_drop"], -rows[i][1]["_removed_loss_rise"]))
    rank = {i: r + 1 for r, i in enumerate(order)}
    display = readout.model.vocabulary.display
    positions = [
        PositionImportance(
            position=i,
            nearest_token=display[int(nearest[i])],
            rank=rank[i],
            **{k: v for k, v in values.items() if not k.startswith("_")},
        )
        for i, values in rows
    ]
    return ImportanceTable(
        soft_accuracy=float(soft_correct.mean()),
        soft_loss=float(soft_loss.mean()),
        examples=len(data),
        positions=positions,
        bootstrap=bootstrap,
    )


def _no_prompt_outcome(readout: Readout, data: LabelledData) -> tuple[np.ndarray, np.ndarray]:
    task = readout.task(1)
    scores = task.score_all(data.texts, prompt=False)
    correct = (scores.argmax(1) == np.asarray(data.targets)).astype(np.float64)
    return correct, task.example_losses(scores, data.targets)
