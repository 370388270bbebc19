"""Run layouts other tools write, read as probe runs: drift, the map, compare and reports work on them as they are.

Accepted layouts (tried in this order, after probe's own run folder):

- ``trainer``: a Hugging Face ``Trainer`` output folder. Its ``checkpoint-N/`` subfolders hold PEFT
  prompt-tuning adapters, and each is the snapshot at step N. ``trainer_state.json`` (the folder's own, else the
  newest checkpoint's) gives the loss and eval history. An adapter at the top level is the last snapshot.
- ``adapter-steps``: a folder of PEFT adapters named by step or epoch: ``step-100/``, ``epoch-3/``,
  ``checkpoint_7/``, ``global_step40/``. An epoch folder is numbered by its epoch.
- ``tensor-steps``: one tensor file per step: ``step-100.safetensors``, ``epoch-3.pt``, ``step_20.npy``
  (.safetensors, .pt, .pth, .bin, .npy). They are read like any prompt file, so nothing is unpickled.

Nothing is ever written into such a folder: snapshots are listed from it on every read, so a run that is
still training is followed live. Caches (the index, the map) go to probe's cache folder.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from probe.core.models import canonical_name
from probe.core.softprompt import SoftPrompt
from probe.formats.files import (
    PEFT_FORMS,
    PEFT_INITS,
    PEFT_KINDS,
    is_adapter,
    looks_complete,
    read_adapter_config,
    read_prompt_file,
)
from probe.formats.manifest import Manifest
from probe.formats.run import Run, RunLayout
from probe.formats.schema import read_json

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"
STEP_NAME = re.compile(r"^(?:checkpoint|step|epoch|global_step|iter)[-_]?(\d+)$", re.IGNORECASE)
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
TENSOR_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".npy")


def _numbered(folder: Path, pattern: re.Pattern[str], *, files: bool) -> dict[int, Path]:
    """Step -> path of the children whose name (a file's stem) matches ``pattern``: adapters, or tensor files."""
    found = {}
    for child in folder.iterdir():
        m = pattern.match(child.stem if files else child.name)
        if not m:
            continue
        kind_ok = (files and child.is_file() and child.suffix.lower() in TENSOR_SUFFIXES) or (
            not files and is_adapter(child)
        )
        if kind_ok and looks_complete(child):  # one still being written joins once it is whole
            found[int(m.group(1))] = child
    return found


def _checkpoints(folder: Path) -> dict[int, Path]:
    return _numbered(folder, CHECKPOINT_NAME, files=False)


def _adapter_steps(folder: Path) -> dict[int, Path]:
    return _numbered(folder, STEP_NAME, files=False)


def _tensor_steps(folder: Path) -> dict[int, Path]:
    return _numbered(folder, STEP_NAME, files=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = read_json(path, what="trainer state")
    except (OSError, ValueError) as e:
        logger.warning("could not read %s: %s", path, e)
        return None
    return value if isinstance(value, dict) else None


def _trainer_state(folder: Path, checkpoints: dict[int, Path]) -> dict[str, Any] | None:
    """The folder's own trainer_state.json, else the newest checkpoint's."""
    candidates = [folder / TRAINER_STATE] + [checkpoints[s] / TRAINER_STATE for s in sorted(checkpoints, reverse=True)]
    for path in candidates:
        if path.is_file():
            state = _read_json(path)
            if state is not None:
                return state
    return None


def _trainer_snapshots(folder: Path) -> dict[int, Path]:
    snapshots = _checkpoints(folder)
    if is_adapter(folder):  # the final adapter, saved by trainer.save_model()
        state = _trainer_state(folder, snapshots) or {}
        final = state.get("global_step") if (folder / TRAINER_STATE).is_file() else state.get("max_steps")
        step = int(final) if isinstance(final, int) else (max(snapshots) if snapshots else 0)
        snapshots.setdefault(step, folder)  # a checkpoint at that step holds the same weights
    return snapshots


@dataclass
class ForeignRun(Run):
    """A run in another tool's layout, opened read-only; its snapshots are listed from the folder on every read."""

    layout: str = ""
    task_count: int = 0
    """How many tasks a multitask run (``MULTITASK_PROMPT_TUNING``) has, each with its own prompt; 0 for any other."""
    task_id: int | None = None
    """The task whose prompt :meth:`snapshot` reads (:meth:`for_task`)."""

    def _snapshot_paths(self) -> dict[int, Path]:
        return _LISTERS[self.layout](self.path)

    @property
    def task_ids(self) -> list[int]:
        """The tasks of a multitask run, empty for any other."""
        return list(range(self.task_count))

    @property
    def task(self) -> int | None:
        """The task whose prompt :meth:`snapshot` reads."""
        return self.task_id

    def for_task(self, task_id: int) -> Run:
        """The run read as task ``task_id``'s prompt.

        Raises:
            ValueError: not a multitask run, or a task it does not have (errors.md 160).
        """
        if not self.task_count:
            return super().for_task(task_id)
        if isinstance(task_id, bool) or not isinstance(task_id, int) or not 0 <= task_id < self.task_count:
            raise ValueError(
                f"run '{self.path}' is a multitask prompt of {self.task_count} tasks and task id {task_id!r} was "
                f"given; pick one from 0 to {self.task_count - 1}"
            )
        return replace(self, task_id=task_id)

    @property
    def steps(self) -> list[int]:
        """Steps with a snapshot in the folder, ascending."""
        return sorted(self._snapshot_paths())

    @property
    def signature(self) -> str:
        """Changes whenever a snapshot or the trainer state does."""
        paths = self._snapshot_paths()
        stamps = [paths[s].stat().st_mtime_ns for s in sorted(paths)]
        state = self.path / TRAINER_STATE
        state_stamp = state.stat().st_mtime_ns if state.is_file() else 0
        return f"{self.path.resolve()}|{sorted(paths)}|{stamps}|{state_stamp}|task {self.task_id}"

    def snapshot(self, step: int) -> SoftPrompt:
        """The prompt at ``step`` (the encoder half of a seq2seq adapter).

        Raises:
            ValueError: no snapshot at that step, or it cannot be read.
        """
        paths = self._snapshot_paths()
        if step not in paths:
            raise ValueError(f"run '{self.path}' has no snapshot at step {step}; it has steps {sorted(paths)}")
        prompt = self._of_task(read_prompt_file(paths[step]))
        return SoftPrompt(
            vectors=prompt.vectors,
            source=str(paths[step]),
            role=prompt.role,
            step=step,
            base_model=prompt.base_model or self.manifest.model,
            metadata={
                "run": self.name,
                "init": self.manifest.init,
                "layout": self.layout,
                **({"task_id": self.task_id, "num_tasks": self.task_count} if self.task_id is not None else {}),
                **({"adapter": prompt.metadata} if "peft_type" in prompt.metadata else {}),
            },
        )

    def _of_task(self, prompts: list[SoftPrompt]) -> SoftPrompt:
        """The chosen task's prompt of a multitask snapshot (never a default task), else the first prompt."""
        if not any("task_id" in p.metadata for p in prompts):
            return prompts[0]
        if self.task_id is None:
            count = len({p.metadata["task_id"] for p in prompts if "task_id" in p.metadata})
            raise ValueError(
                f"run '{self.path}' is a multitask prompt of {count} tasks, each with its own prompt; pick one with "
                f"--task-id (run.for_task(id), the dashboard's Task picker) from 0 to {count - 1}"
            )
        for prompt in prompts:
            if prompt.metadata.get("task_id") == self.task_id:
                return prompt
        raise ValueError(f"run '{self.path}' has no task {self.task_id} at every step; its snapshots differ")

    def records(self) -> list[dict[str, Any]]:
        """The Trainer's log history as probe's metric lines: ``train`` (loss, lr) and ``eval`` (eval_* values)."""
        state = _trainer_state(self.path, _checkpoints(self.path)) if self.layout == "trainer" else None
        out: list[dict[str, Any]] = []
        history = (state or {}).get("log_history", [])
        for entry in history if isinstance(history, list) else []:
            step = entry.get("step") if isinstance(entry, dict) else None
            if not _number(step) or isinstance(step, float):
                continue  # a hand-edited or foreign entry: read what is well formed, skip the rest
            if _number(entry.get("loss")):
                lr = entry.get("learning_rate")
                out.append({"kind": "train", "step": step, "loss": entry["loss"], "lr": lr if _number(lr) else None})
            evals = {k.removeprefix("eval_"): v for k, v in entry.items() if k.startswith("eval_") and _number(v)}
            if evals:
                out.append({"kind": "eval", "step": step, **evals})
        return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_LISTERS = {"trainer": _trainer_snapshots, "adapter-steps": _adapter_steps, "tensor-steps": _tensor_steps}


def _manifest(folder: Path, layout: str, snapshots: dict[int, Path]) -> Manifest:
    """A probe manifest from what the folder records (adapter config, trainer state); unknowns stay None."""
    newest = snapshots[max(snapshots)]
    config: dict[str, Any] = read_adapter_config(newest) if is_adapter(newest) else {}
    state = _trainer_state(folder, _checkpoints(folder)) if layout == "trainer" else None
    length: int = config["num_virtual_tokens"] if config else read_prompt_file(newest)[0].length
    max_steps, global_step = _step_field(state, "max_steps"), _step_field(state, "global_step")
    finished = max_steps is not None and global_step is not None and global_step >= max_steps
    base = config.get("base_model_name_or_path")
    init = str(config.get("prompt_tuning_init") or "").upper()
    return Manifest(
        layout=layout,
        model=canonical_name(base) if base else None,
        kind=PEFT_KINDS.get(str(config.get("task_type"))),
        task_form=PEFT_FORMS.get(str(config.get("task_type"))),
        init=PEFT_INITS.get(init, init.lower() or "unknown"),
        length=length,
        seed=None,
        steps=max_steps if max_steps is not None else max(snapshots),
        status="finished" if finished else "unknown",
    )


def _task_count(snapshots: dict[int, Path]) -> int:
    """How many tasks the newest snapshot's multitask prompt has (its adapter config says; a loose file's tensors
    do); 0 when it is not a multitask prompt."""
    newest = snapshots[max(snapshots)]
    if is_adapter(newest):
        config = read_adapter_config(newest)
        count = config.get("num_tasks")
        multitask = config.get("peft_type") == "MULTITASK_PROMPT_TUNING"
        return count if multitask and isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0
    return len({p.metadata["task_id"] for p in read_prompt_file(newest) if "task_id" in p.metadata})


def _step_field(state: dict[str, Any] | None, name: str) -> int | None:
    """An integer field of trainer_state.json, or None (with a warning) when it is missing or of another type."""
    value = (state or {}).get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        logger.warning("trainer_state.json: %s is %r, not a step number; ignored", name, value)
        return None
    return value


def _opener(layout: str):
    def open_run(folder: Path) -> Run:
        snapshots = _LISTERS[layout](folder)
        manifest = _manifest(folder, layout, snapshots)
        return ForeignRun(path=folder, manifest=manifest, layout=layout, task_count=_task_count(snapshots))

    return open_run


LAYOUTS: tuple[RunLayout, ...] = (
    RunLayout(
        "trainer",
        "a Hugging Face Trainer output folder with checkpoint-N/ PEFT prompt-tuning adapters",
        lambda p: bool(_checkpoints(p)),
        _opener("trainer"),
    ),
    RunLayout(
        "adapter-steps",
        "a folder of PEFT adapters named by step or epoch (step-100/, epoch-3/)",
        lambda p: bool(_adapter_steps(p)),
        _opener("adapter-steps"),
    ),
    RunLayout(
        "tensor-steps",
        "one tensor file per step (step-100.safetensors, epoch-3.pt, step_20.npy)",
        lambda p: bool(_tensor_steps(p)),
        _opener("tensor-steps"),
    ),
)
"""Other tools' layouts, in the order they are tried (after probe's own)."""
