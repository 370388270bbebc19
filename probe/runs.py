"""The on-disk training run: a manifest, prompt snapshots, metrics and a PEFT adapter.

```
RUN/
  manifest.json                  format, model, init, seed, settings, status, final metrics
  snapshots/step-00000000.safetensors   the prompt at step 0, every S steps, and the last step
  metrics.jsonl                  one JSON object a line: {"kind": "train"|"eval", "step": ..., ...}
  adapter/                       PEFT adapter of the final prompt (PeftModel.from_pretrained loads it)
```

Every file is written atomically (temp file + ``os.replace``) and metrics lines are appended and fsynced,
so a run killed at any moment keeps every snapshot written so far and stays readable; a reader skips a torn
last metrics line. Snapshots are listed from the folder, not from the manifest, so the manifest may lag.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probe.prompts import Loader, register_loader
from probe.softprompt import SoftPrompt, check_vectors
from probe.util import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

RUN_FORMAT = 1
MANIFEST = "manifest.json"
SNAPSHOTS = "snapshots"
METRICS = "metrics.jsonl"
ADAPTER = "adapter"
HARD_PROMPT = "hard-prompt.json"
"""The best real-token prompt ``probe explain`` found (token ids; probe loads it as a prompt)."""
EXPLAIN = "explain.json"
"""The latest ``probe explain`` readings; ``explain/step-N.json`` keeps one file per measured step."""
EXPLAIN_STEPS = "explain"
SNAPSHOT_KEY = "prompt"
_SNAPSHOT_NAME = re.compile(r"^step-(\d{8})\.safetensors$")
REQUIRED_FIELDS = ("format", "model", "init", "length", "seed", "status")


def snapshot_name(step: int) -> str:
    """File name of the snapshot at ``step``."""
    return f"step-{step:08d}.safetensors"


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder with a probe run manifest."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file()


def _read_manifest(path: Path) -> dict[str, Any]:
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"'{path}' is not a probe run: it has no {MANIFEST}") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"run manifest '{manifest_path}' is corrupt ({e}); the run cannot be read") from e
    if not isinstance(manifest, dict):
        raise ValueError(f"run manifest '{manifest_path}' holds a {type(manifest).__name__}; expected an object")
    missing = [f for f in REQUIRED_FIELDS if f not in manifest]
    if missing:
        raise ValueError(f"run manifest '{manifest_path}' lacks {missing}; it was not written by probe")
    if manifest["format"] != RUN_FORMAT:
        raise ValueError(
            f"run manifest '{manifest_path}' has format {manifest['format']!r}; this probe reads format {RUN_FORMAT}"
        )
    return manifest


@dataclass
class Run:
    """A training run folder opened for reading (it may still be being written).

    Attributes:
        path: the run folder.
        manifest: the manifest as a dict.
    """

    path: Path
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        """The run folder's name."""
        return self.path.name

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
        return f"{self.path.resolve()}|{self.steps}|{self.manifest.get('updated')}"

    @property
    def status(self) -> str:
        """running / finished / interrupted / failed, as last recorded."""
        return str(self.manifest.get("status"))

    def accuracies(self) -> dict[str, float]:
        """The run's measured test accuracies: soft and discretised (final), zero-shot, and the hard prompt's."""
        final = self.manifest.get("final") or {}
        found = {
            "soft": final.get("accuracy"),
            "discretised": final.get("discrete_accuracy"),
            "zero_shot": self.manifest.get("zero_shot_accuracy"),
        }
        hard = self.path / HARD_PROMPT
        if hard.is_file():
            with contextlib.suppress(OSError, ValueError):  # an unreadable file is not a measurement
                found["hard_prompt"] = json.loads(hard.read_text(encoding="utf-8")).get("accuracy")
        return {k: float(v) for k, v in found.items() if isinstance(v, int | float)}

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

    @property
    def labels(self) -> list[str]:
        """Class labels of the task."""
        return list(self.manifest.get("labels") or [])

    def snapshot(self, step: int) -> SoftPrompt:
        """The prompt at ``step``.

        Raises:
            ValueError: no snapshot at that step, or the file is corrupt.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = self.path / SNAPSHOTS / snapshot_name(step)
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
            role="encoder" if self.manifest.get("kind") == "seq2seq" else None,
            base_model=self.manifest.get("model"),
            metadata={"run": self.name, "init": self.manifest.get("init")},
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
        """Every complete line of metrics.jsonl (a torn last line from a crash is skipped)."""
        path = self.path / METRICS
        if not path.is_file():
            return []
        out = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # torn tail of a write in progress or a crash
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    logger.warning("skipping a corrupt metrics line in %s", path)
        return out

    def metrics(self) -> pd.DataFrame:
        """Training metrics per step (step, loss, lr, ...)."""
        rows = [r for r in self.records() if r.get("kind") == "train"]
        return pd.DataFrame(rows).drop(columns="kind") if rows else pd.DataFrame(columns=["step", "loss", "lr"])

    def evaluations(self) -> pd.DataFrame:
        """Evaluations (step, accuracy, discrete_accuracy, ...; per-example bits: :meth:`final_correct`)."""
        rows = [r for r in self.records() if r.get("kind") == "eval"]
        if not rows:
            return pd.DataFrame(columns=["step", "accuracy", "discrete_accuracy"])
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


_LAYOUTS: list[RunLayout] = []


def register_layout(layout: RunLayout) -> None:
    """Add a run layout (see :mod:`probe.layouts`); probe's own run folder is always tried first."""
    _LAYOUTS.append(layout)


def layouts() -> list[RunLayout]:
    """The layouts a run folder may have: probe's own, then the registered ones, in the order they are tried."""
    own = RunLayout("probe", f"a probe run ({MANIFEST}, {SNAPSHOTS}/)", is_run_folder, _open_probe_run)
    return [own, *_LAYOUTS]


def _open_probe_run(path: Path) -> Run:
    return Run(path=path, manifest=_read_manifest(path))


def is_any_run(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder in any run layout (probe's own or another tool's)."""
    p = Path(path)
    return p.is_dir() and any(layout.detect(p) for layout in layouts())


def load_run(path: str | os.PathLike[str]) -> Run:
    """Open a run folder: probe's own, or a layout another tool writes (:func:`layouts`), read-only.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: a corrupt manifest, or a folder in none of the accepted layouts (the message lists them).
    """
    p = Path(path).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"run folder '{path}' does not exist")
    if (p / MANIFEST).is_file():  # probe's own, even when corrupt: say what is wrong with it
        return _open_probe_run(p)
    for layout in layouts():
        if layout.detect(p):
            return layout.open(p)
    accepted = "; ".join(f"{layout.name}: {layout.description}" for layout in layouts())
    raise ValueError(f"'{path}' is not a run folder in any layout probe reads. Accepted layouts: {accepted}")


def find_runs(root: str | os.PathLike[str]) -> list[Run]:
    """Every readable run directly under ``root`` (or ``root`` itself), sorted by name; broken ones skipped."""
    p = Path(root).expanduser()
    if not p.is_dir():
        return []
    candidates = [p] if is_any_run(p) else sorted(c for c in p.iterdir() if is_any_run(c))
    runs = []
    for c in candidates:
        try:
            runs.append(load_run(c))
        except (ValueError, FileNotFoundError) as e:
            logger.warning("skipping %s: %s", c, e)
    return runs


class RunWriter:
    """Writes a run folder as training goes. Only one process (rank 0) should hold one.

    Args:
        path: the run folder (created; must not already hold a run unless ``resume``).
        manifest: the initial manifest fields.
        resume: open an existing run to continue it.
    """

    def __init__(self, path: str | os.PathLike[str], manifest: dict[str, Any], *, resume: bool = False) -> None:
        self.path = Path(path)
        if is_run_folder(self.path) and not resume:
            raise ValueError(f"'{self.path}' already holds a run; pick a new --out, or resume it")
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"'{self.path}' is a file; a run needs a folder")
        (self.path / SNAPSHOTS).mkdir(parents=True, exist_ok=True)
        self.manifest = {"format": RUN_FORMAT, **manifest}
        self.manifest.setdefault("status", "running")
        self.manifest.setdefault("created", time.time())
        self.write_manifest()

    def write_manifest(self) -> None:
        """Atomically rewrite manifest.json."""
        self.manifest["updated"] = time.time()
        atomic_write_json(self.path / MANIFEST, self.manifest)

    def update(self, **fields: Any) -> None:
        """Set manifest fields and rewrite it."""
        self.manifest.update(fields)
        self.write_manifest()

    def write_snapshot(self, step: int, vectors: np.ndarray) -> Path:
        """Atomically write the prompt at ``step``; when this returns, the snapshot is on disk."""
        from safetensors.numpy import save

        vectors = check_vectors(vectors, what=f"snapshot {step}")
        blob = save({SNAPSHOT_KEY: vectors}, metadata={"step": str(step)})
        path = self.path / SNAPSHOTS / snapshot_name(step)
        atomic_write_bytes(path, blob)
        return path

    def log(self, kind: str, **values: Any) -> None:
        """Append one metrics line (fsynced)."""
        line = json.dumps({"kind": kind, **values}, allow_nan=True) + "\n"
        with open(self.path / METRICS, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, step: int) -> None:
        """On resume, drop snapshots and metrics past ``step`` (they belong to the lost tail)."""
        for s in load_run(self.path).steps:
            if s > step:
                (self.path / SNAPSHOTS / snapshot_name(s)).unlink(missing_ok=True)
        records = [r for r in Run(self.path, self.manifest).records() if r.get("step", 0) <= step]
        atomic_write_bytes(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in records).encode())


register_loader(
    Loader(
        "run",
        "a run folder (probe's own, or a layout of probe.layouts): its latest snapshot",
        is_any_run,
        lambda path, key: [load_run(path).latest_prompt()],
    )
)
