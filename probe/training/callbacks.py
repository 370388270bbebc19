"""What the trainer reports as it goes, and the callback that writes probe's run folder from it.

:class:`TrainingCallback` is the protocol (a callback implements the events it needs; a plain function of a
:class:`StepRecord` is called after every step). :class:`RunFolder` is the one that writes the run folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from probe.core.io import atomic_write_json
from probe.formats.run import ADAPTER, ADAPTER_FILES, Run
from probe.formats.writer import RunWriter


@dataclass
class StepRecord:
    """What the loop reports after each step (given to callbacks)."""

    step: int
    loss: float
    lr: float
    seconds: float
    prompt: torch.Tensor | None = None  # the live prompt parameter [p, d]; copy it to keep it


class TrainingCallback(Protocol):
    """What :class:`Trainer` reports as it goes. probe's run folder is written by one of these (:class:`RunFolder`);
    pass your own to :func:`train` (``callbacks=[...]``) to follow training elsewhere."""

    def on_begin(self, fields: dict[str, Any]) -> None:
        """Once at step 0 of a new run: run-level figures (the zero-shot accuracy)."""

    def on_step(self, record: StepRecord) -> None:
        """After every optimisation step."""

    def on_evaluate(self, step: int, result: dict[str, Any], *, on: str, rows: int) -> None:
        """After an evaluation on ``rows`` test rows (``on``: "subset" or "full").

        ``result`` holds the accuracies (numbers) and, on the full split, ``correct``: each test example's
        correctness under the soft prompt as a string of 0s and 1s, in the split's order.
        """

    def on_snapshot(self, step: int, vectors: np.ndarray) -> None:
        """The prompt at ``step`` (float32 [p, d]), every ``snapshot_every`` steps, at step 0 and the end."""

    def on_end(self, status: str, step: int, final: dict[str, float]) -> None:
        """Once: "finished" (with the final figures), "interrupted" or "failed"."""


class RunFolder:
    """The :class:`TrainingCallback` that writes probe's run folder (only the main process holds one).

    Metrics lines, snapshots and the manifest go through :class:`probe.formats.run.RunWriter`; at the end the PEFT
    adapter is saved (:func:`save_adapter`). Every write is atomic.
    """

    def __init__(self, writer: RunWriter, peft_model: Any, base_model: str) -> None:
        self.writer, self.peft_model, self.base_model = writer, peft_model, base_model

    def written(self) -> Run:
        """The run folder as written so far."""
        return Run(self.writer.path, self.writer.manifest)

    def on_begin(self, fields: dict[str, Any]) -> None:
        self.writer.update(**fields)

    def on_step(self, record: StepRecord) -> None:
        self.writer.log("train", step=record.step, loss=record.loss, lr=record.lr, seconds=round(record.seconds, 5))

    def on_evaluate(self, step: int, result: dict[str, Any], *, on: str, rows: int) -> None:
        self.writer.log("eval", step=step, on=on, rows=rows, **result)

    def on_snapshot(self, step: int, vectors: np.ndarray) -> None:
        self.writer.write_snapshot(step, vectors)

    def on_end(self, status: str, step: int, final: dict[str, float]) -> None:
        try:
            if status == "finished":
                save_adapter(self.peft_model, self.writer.path / ADAPTER, self.base_model)
                self.writer.update(status=status, last_step=step, final=final, finished=time.time())
            else:
                self.writer.update(status=status, last_step=step)
        finally:
            self.writer.close()


def save_adapter(peft_model: Any, folder: Path, base_model: str) -> None:
    """Save the PEFT adapter, recording the base model by name (never a local path), with no moment at which
    a reader finds it missing or half-written, and without touching any other file in ``folder``.

    The adapter is saved into a temporary folder beside ``folder``. Each adapter file then replaces its old version
    by ``os.replace``, which is atomic: the weights first, the config last. An adapter file of the other weight
    format left by an earlier save is removed; nothing else in ``folder`` is.
    """
    tmp = Path(tempfile.mkdtemp(prefix=".adapter-", dir=folder.parent))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peft_model.save_pretrained(tmp)
        config_path = tmp / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = base_model
        atomic_write_json(config_path, config)
        folder.mkdir(exist_ok=True)
        new = [tmp / name for name in ADAPTER_FILES if (tmp / name).is_file()]
        for path in sorted(new, key=lambda p: p.name == "adapter_config.json"):  # the config goes last
            os.replace(path, folder / path.name)
        for name in set(ADAPTER_FILES) - {p.name for p in new}:
            (folder / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
