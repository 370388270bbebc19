"""The on-disk training run: a manifest, prompt snapshots, metrics and a PEFT adapter.

```
RUN/
  manifest.json                  format, model, init, seed, settings, status, final figures (Manifest)
  snapshots/step-00000000.safetensors   the prompt at step 0, every S steps, and the last step
  snapshots/optimizer-state.safetensors the optimizer's state at the newest snapshot (an exact resume)
  metrics.jsonl                  one JSON object a line: {"kind": "train"|"eval", "step": ..., ...}
  adapter/                       PEFT adapter of the final prompt (PeftModel.from_pretrained loads it)
  hard-prompt.json               the best real-token prompt (probe explain; HardPrompt)
  explain.json, explain/         what the prompt does (probe explain; ExplainRecord), latest and per step
```

Every file is written atomically (temp file + ``os.replace``) and metrics lines are appended and fsynced,
so a run killed at any moment keeps every snapshot written so far and stays readable; a reader skips a torn
last metrics line. Snapshots are listed from the folder, not from the manifest, so the manifest may lag.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probe.core.data import BUNDLED_SETS
from probe.core.frames import MEMORY
from probe.core.names import HARD_PROMPT, ZERO_SHOT, label, measure_name
from probe.core.softprompt import SoftPrompt, check_vectors
from probe.formats.hard_prompt import HARD_PROMPT_FILE, read_hard_prompt
from probe.formats.manifest import MANIFEST, Manifest, read_manifest

logger = logging.getLogger(__name__)

SNAPSHOTS = "snapshots"
METRICS = "metrics.jsonl"
ADAPTER = "adapter"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin", "adapter_config.json")
"""What probe writes into a run's ``adapter/`` folder (PEFT's model card is left out)."""
SNAPSHOT_KEY = "prompt"
OPTIMIZER_STATE = "optimizer-state.safetensors"
"""In ``snapshots/``: the optimizer's state (AdamW's moments and step count) at the newest snapshot, so a resumed run
continues exactly; its metadata names the step."""
_SNAPSHOT_NAME = re.compile(r"^step-(\d{8})\.safetensors$")


def snapshot_name(step: int) -> str:
    """File name of the snapshot at ``step``."""
    return f"step-{step:08d}.safetensors"


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder with a probe run manifest."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file()


@dataclass(repr=False)
class Run:
    """A training run folder opened for reading (it may still be being written).

    Attributes:
        path: the run folder.
        manifest: its :class:`probe.formats.manifest.Manifest`.
    """

    path: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        """The run folder's name."""
        return self.path.name

    def __repr__(self) -> str:
        m = self.manifest
        return f"Run({str(self.path)!r}, {m.init}, {m.length} positions, {len(self.steps)} snapshots, {m.status})"

    def _repr_markdown_(self) -> str:
        accuracies = ", ".join(f"{label(k)} {v:.3f}" for k, v in self.accuracies().items()) or "not measured"
        return f"**{self.name}** ({self.manifest.init}, {self.manifest.length} positions, {self.status}): {accuracies}"

    @property
    def steps(self) -> list[int]:
        """Steps with a snapshot on disk, ascending (read from the folder each time)."""
        folder = self.path / SNAPSHOTS
        if not folder.is_dir():
            return []
        found = []
        for entry in os.listdir(folder):
            m = _SNAPSHOT_NAME.match(entry)
            if m:
                found.append(int(m.group(1)))
        return sorted(found)

    @property
    def signature(self) -> str:
        """Changes whenever the run does (folder, snapshot steps, manifest update time): a cache key."""
        return f"{self.path.resolve()}|{self.steps}|{self.manifest.updated}"

    @property
    def task_ids(self) -> list[int]:
        """The tasks of a multitask run (``MULTITASK_PROMPT_TUNING``: one prompt per task); empty for any other."""
        return []

    @property
    def task(self) -> int | None:
        """The task whose prompt :meth:`snapshot` reads (:meth:`for_task`); None for a run of one prompt."""
        return None

    def for_task(self, task_id: int) -> Run:
        """The run read as task ``task_id``'s prompt (a multitask run).

        Raises:
            ValueError: not a multitask run (errors.md 160).
        """
        raise ValueError(f"run '{self.path}' is not a multitask run; it has no task {task_id!r}: drop the task id")

    @property
    def status(self) -> str:
        """running / finished / interrupted / failed, as last recorded."""
        return self.manifest.status

    @property
    def labels(self) -> list[str]:
        """Class labels of the task."""
        return list(self.manifest.labels)

    def data_source(self) -> str:
        """The run's data as it can be read from here: the absolute path its manifest records, else (a run recorded
        before that) its config's path as given.

        Raises:
            ValueError: a relative path found in neither place (errors.md 208).
        """
        given = str((self.manifest.config or {}).get("data") or "")
        recorded = self.manifest.data.path if self.manifest.data is not None else None
        if not given or given in BUNDLED_SETS or given.startswith(MEMORY) or Path(given).expanduser().is_absolute():
            return given  # as_splits reads it, or says in one line why not
        if recorded and Path(recorded).is_absolute() and Path(recorded).is_file():
            return recorded  # the file it trained on, not one of the same name where this is run
        if Path(given).exists():
            return given  # a run recorded before the manifest kept the absolute path
        raise ValueError(
            f"run '{self.path}' records its data as '{given}', relative to the folder it was trained in, and it is "
            f"not in {Path.cwd()}: run from that folder, or give the data with --data FILE (data=)"
        )

    def accuracies(self) -> dict[str, float]:
        """The run's measured test accuracies by measure name: soft and discretised (final), zero-shot, and the
        hard prompt's (:mod:`probe.core.names`) when it was measured under the task the run was trained on."""
        found: dict[str, float | None] = {**self.manifest.final, ZERO_SHOT: self.manifest.zero_shot_accuracy}
        hard = self.path / HARD_PROMPT_FILE
        if hard.is_file():
            try:
                record = read_hard_prompt(hard)
            except (OSError, ValueError) as e:  # an unreadable file is not a measurement
                logger.warning("skipping %s: %s", hard, e)
            else:
                if record.task is not None and record.task == self.manifest.task_form:  # never mix two tasks
                    found[HARD_PROMPT] = record.hard_prompt_accuracy
        return {k: float(v) for k, v in found.items() if isinstance(v, int | float) and np.isfinite(v)}

    def final_correct(self) -> np.ndarray | None:
        """bool [test rows]: each test example's correctness under the final soft prompt, in the split's order.

        Read from the last full-split evaluation in the log; None for runs that did not record it (older runs,
        other tools' folders).
        """
        for record in reversed(self.records()):
            bits = record.get("correct") if record.get("kind") == "eval" and record.get("on") == "full" else None
            if isinstance(bits, str) and bits and set(bits) <= {"0", "1"}:
                return np.frombuffer(bits.encode("ascii"), dtype=np.uint8) == ord("1")
        return None

    def snapshot(self, step: int) -> SoftPrompt:
        """The prompt at ``step``.

        Raises:
            ValueError: no snapshot at that step, or the file is corrupt.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        if isinstance(step, bool) or not isinstance(step, int | np.integer):
            raise TypeError(f"step is {step!r}; expected a whole number, one of the run's steps {_span(self.steps)}")
        path = self.path / SNAPSHOTS / snapshot_name(int(step))
        if not path.is_file():
            raise ValueError(f"run '{self.path}' has no snapshot at step {step}; it has steps {_span(self.steps)}")
        try:
            vectors = load_file(str(path))[SNAPSHOT_KEY]
        except (SafetensorError, KeyError, OSError) as e:
            raise ValueError(f"snapshot '{path}' is unreadable ({e}); delete it to resume from the one before") from e
        return SoftPrompt(
            vectors=check_vectors(vectors, what=str(path)),
            source=str(self.path),
            step=step,
            role="encoder" if self.manifest.kind == "seq2seq" else None,
            base_model=self.manifest.model,
            metadata={"run": self.name, "init": self.manifest.init},
        )

    def initial_prompt(self) -> SoftPrompt:
        """The step-0 snapshot."""
        return self.snapshot(self._require_steps()[0])

    def latest_prompt(self) -> SoftPrompt:
        """The last snapshot (the final prompt once finished)."""
        return self.snapshot(self._require_steps()[-1])

    def iter_snapshots(self, steps: list[int] | None = None) -> Iterator[SoftPrompt]:
        """Yield snapshots one at a time (memory stays at one snapshot)."""
        for step in steps if steps is not None else self.steps:
            yield self.snapshot(step)

    def _require_steps(self) -> list[int]:
        steps = self.steps
        if not steps:
            raise ValueError(f"run '{self.path}' has no snapshots yet")
        return steps

    def records(self) -> list[dict[str, Any]]:
        """Every complete line of metrics.jsonl that is a JSON object (a torn last line from a crash is skipped),
        its measures under their one name (:func:`probe.core.names.measure_name`)."""
        path = self.path / METRICS
        if not path.is_file():
            return []
        out = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.endswith("\n"):
                    break  # torn tail of a write in progress or a crash
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    logger.warning("skipping a corrupt metrics line %d in %s", n, path)
                    continue
                if not isinstance(record, dict):
                    logger.warning(
                        "skipping metrics line %d in %s: a %s, not an object", n, path, type(record).__name__
                    )
                    continue
                out.append({measure_name(k): v for k, v in record.items()})
        return out

    def metrics(self) -> pd.DataFrame:
        """Training metrics per step (step, loss, lr, ...)."""
        rows = [r for r in self.records() if r.get("kind") == "train"]
        return pd.DataFrame(rows).drop(columns="kind") if rows else pd.DataFrame(columns=["step", "loss", "lr"])

    def evaluations(self) -> pd.DataFrame:
        """Evaluations (step, soft_accuracy, discretised_accuracy, ...; per-example bits: :meth:`final_correct`)."""
        rows = [r for r in self.records() if r.get("kind") == "eval"]
        if not rows:
            return pd.DataFrame(columns=["step", "soft_accuracy", "discretised_accuracy"])
        return pd.DataFrame(rows).drop(columns=["kind", "correct"], errors="ignore")


def _span(steps: list[int]) -> str:
    if not steps:
        return "none"
    return f"{steps[0]}..{steps[-1]} ({len(steps)} snapshots)"


@dataclass(frozen=True)
class RunLayout:
    """A folder layout other tools write that reads as a run: ``detect`` says whether a folder holds it."""

    name: str
    description: str
    detect: Callable[[Path], bool]
    open: Callable[[Path], Run]


def open_probe_run(path: Path) -> Run:
    """probe's own run folder, with its manifest read and checked."""
    return Run(path=path, manifest=read_manifest(path))
