"""What the trainer reports as it goes, and the callback that writes probe's run folder from it.

:class:`TrainingCallback` is the protocol (a callback implements the events it needs; a plain function of a
:class:`StepRecord` is called after every step). :class:`RunFolder` is the one that writes the run folder.
"""

from __future__ import annotations

import json
import logging
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

from probe.core.io import atomic_write_bytes, atomic_write_json
from probe.formats.run import ADAPTER, ADAPTER_FILES, OPTIMIZER_STATE, SNAPSHOTS, Run
from probe.formats.writer import RunWriter

logger = logging.getLogger(__name__)


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

    def on_optimizer_state(self, step: int, state: dict[str, Any]) -> None:
        """The optimizer's state after ``step`` (written just before that step's snapshot)."""
        write_optimizer_state(self.writer.path / SNAPSHOTS / OPTIMIZER_STATE, step, state)

    def on_end(self, status: str, step: int, final: dict[str, float]) -> None:
        try:
            if status == "finished":
                save_adapter(self.peft_model, self.writer.path / ADAPTER, self.base_model)
                self.writer.update(status=status, last_step=step, final=final, finished=time.time())
            else:
                self.writer.update(status=status, last_step=step)
        finally:
            self.writer.close()


def write_optimizer_state(path: Path, step: int, state: dict[str, Any]) -> None:
    """An optimizer's ``state_dict()`` for one parameter group as safetensors (its tensors) and metadata (its
    numbers and hyperparameters, as JSON), atomically."""
    from safetensors.torch import save

    tensors, numbers = {}, {}
    for param, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param}.{name}"] = value.detach().cpu().contiguous()
            else:
                numbers[f"{param}.{name}"] = value
    meta = {"step": str(step), "numbers": json.dumps(numbers), "groups": json.dumps(state["param_groups"])}
    atomic_write_bytes(path, save(tensors, metadata=meta))


def read_optimizer_state(path: Path, step: int) -> dict[str, Any] | None:
    """The optimizer state saved with the snapshot at ``step``, as a ``state_dict()``; None when there is none for
    that step (a run from before probe kept it, or one stopped between the two writes)."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("step") != str(step):
                return None
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
        numbers = json.loads(meta["numbers"])
        groups = json.loads(meta["groups"])
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        logger.warning("ignoring the unreadable optimizer state %s: %s", path, e)
        return None
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *numbers.items()]:
        param, _, name = key.partition(".")
        state.setdefault(int(param), {})[name] = value
    return {"state": state, "param_groups": groups}


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
