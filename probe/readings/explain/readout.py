"""The context every reading of what a prompt does shares: the model, its index, the task and the data.

:class:`Readout` runs a prompt's vectors through the task in one batched pass (:meth:`Readout.outcome`), and
``Readout.from_run`` builds it from a run's manifest. The readings themselves are in :mod:`.importance`,
:mod:`.hardening` and :mod:`.lens`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from probe.core.data import DataSplits, LabelledData, train_test
from probe.core.index import VocabIndex
from probe.core.models import LoadedModel, load_model
from probe.core.softprompt import check_vectors
from probe.formats.run import Run
from probe.training.config import TaskForm
from probe.training.evaluation import eval_subset, zero_shot_accuracy
from probe.training.tasks import Task, make_task, prompt_parameter, wrap_with_prompt

logger = logging.getLogger(__name__)


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar of forward passes (hidden unless ``enabled``), shared by the readings."""
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
        form: the encoder task's form, as in training ("cosine" or "verbaliser"; see
            :data:`probe.training.config.TASK_FORMS`).
    """

    model: LoadedModel
    index: VocabIndex
    labels: list[str]
    splits: DataSplits
    max_length: int = 128
    temperature: float = 0.05
    form: TaskForm = "cosine"
    _tasks: dict[int, Task] = field(default_factory=dict, repr=False)

    @classmethod
    def from_run(cls, run: Run, model: LoadedModel | None = None, *, data_changed_ok: bool = False) -> Readout:
        """The readout a run was trained with: its model, data file, split, labels, task form and settings, and
        the test rows its final figures were measured on.

        Raises:
            ValueError: the run records no data (e.g. a run another tool wrote): pass ``data`` to
                :meth:`from_data` instead; or its data file changed since (unless ``data_changed_ok``).
        """
        config = run.manifest.config or {}
        if not config.get("data"):
            raise ValueError(
                f"run '{run.path}' records no training data; give the data file (probe explain --data FILE)"
            )
        seed = int(config.get("seed", 0))
        splits = train_test(
            config["data"],
            text_column=config.get("text_column", "text"),
            label_column=config.get("label_column", "label"),
            seed=seed,
        )
        if run.manifest.data is not None:
            run.manifest.data.check(splits.train.sha256, allow_changed=data_changed_ok, run=str(run.path))
        if config.get("test_size"):
            splits = replace(splits, test=eval_subset(splits.test, int(config["test_size"]), seed))
        model = model or load_model(run.manifest.model or "default")
        return cls(
            model=model,
            index=VocabIndex.for_model(model),
            labels=splits.train.label_names,
            splits=splits,
            max_length=int(config.get("max_length", 128)),
            temperature=float(config.get("temperature", 0.05)),
            form=config.get("task", "cosine"),
        )

    @classmethod
    def from_data(
        cls, model: LoadedModel, data: str | os.PathLike[str], *, seed: int = 0, form: TaskForm = "cosine"
    ) -> Readout:
        """A readout for any prompt of ``model`` on a labelled data file (its ``split`` column if it has one)."""
        splits = train_test(data, seed=seed)
        labels = splits.train.label_names
        return cls(model=model, index=VocabIndex.for_model(model), labels=labels, splits=splits, form=form)

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
                form=self.form,
            )
        return self._tasks[length]

    def key(self) -> dict[str, Any]:
        """Everything a reading's result depends on besides the prompt: the model, the task, the data (for cache
        keys, such as the hard-prompt search's resumable state)."""
        digest = hashlib.sha256()
        for split in (self.splits.train, self.splits.test):
            for text, label in zip(split.texts, split.labels, strict=True):
                digest.update(text.encode("utf-8") + b"\x00" + label.encode("utf-8") + b"\x01")
            digest.update(b"\x02")
        return {
            "model": self.model.fingerprint,
            "task": type(self.task(1)).__name__,
            "form": self.form,
            "labels": list(self.labels),
            "max_length": self.max_length,
            "temperature": self.temperature,
            "data_sha256": digest.hexdigest(),
        }

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
