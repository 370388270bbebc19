"""The run manifest (``manifest.json``): what a run is, how it was made and what it measured, as a typed record.

Every writer (probe's trainer, the recorders for other loops, other tools' layouts) builds a :class:`Manifest`
and every reader reads its fields; nothing else indexes the JSON. Older files read: the final figures under
their earlier names (``accuracy``, ``discrete_accuracy``) are read as :data:`probe.core.names.SOFT` and
:data:`~probe.core.names.DISCRETISED`. Keys this probe does not know are warned about and written back as
they were.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.core.io import MAX_POSITIONS
from probe.core.names import DISCRETISED, SOFT, measure_name
from probe.formats.schema import FieldReader, read_json

RUN_FORMAT = 1
MANIFEST = "manifest.json"
STATUSES = ("running", "finished", "interrupted", "failed", "unknown")


@dataclass(frozen=True)
class DataRecord:
    """The data a run trained on: its path (or bundled name), the file's sha256 and the split sizes; and, when the
    run was resumed on data that had changed since (allowed with ``--data-changed-ok``), the new data's sha256."""

    path: str | None
    sha256: str
    train_size: int
    test_size: int
    changed_sha256: str | None = None

    def check(self, sha256_now: str, *, allow_changed: bool, run: str, given: str | None = None) -> str | None:
        """Compare the data read now with the data the run recorded; returns the new hash when it changed.

        Raises:
            ValueError: the data changed and ``allow_changed`` is not set.
        """
        if not self.sha256 or not sha256_now or sha256_now == self.sha256:
            return None
        if not allow_changed:
            if given is not None and not _same_path(given, self.path or ""):  # another set handed in: nothing changed
                raise ValueError(
                    f"the data given ('{given}') is not the data run '{run}' was trained on ('{self.path}', sha256 "
                    f"{self.sha256[:12]}; given {sha256_now[:12]}): its test rows may have been training rows. Give "
                    "the run's own data, or pass --data-changed-ok (data_changed_ok=True) to read it on this data"
                )
            raise ValueError(
                f"the data '{self.path}' has changed since run '{run}' was trained on it (sha256 {self.sha256[:12]}, "
                f"now {sha256_now[:12]}): its test rows may have been training rows. Use the data it was trained on, "
                "or pass --data-changed-ok (data_changed_ok=True) to go on and record both hashes"
            )
        return sha256_now

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``data`` entry."""
        out = dataclasses.asdict(self)
        return out if self.changed_sha256 else {k: v for k, v in out.items() if k != "changed_sha256"}

    @classmethod
    def from_dict(cls, data: Any, source: str) -> DataRecord:
        """Read the manifest's ``data`` entry (errors name ``source``)."""
        lacked = {"path": None, "sha256": "", "train_size": 0, "test_size": 0}
        return cls(**FieldReader(data, source, "run manifest 'data'").fields_of(cls, defaults=lacked))


@dataclass(frozen=True)
class Manifest:
    """A run's manifest.

    Attributes:
        model: the model's canonical name (None when another tool's folder does not say).
        init: how the prompt started (``class-label``, ``sampled-vocab``, ..., ``unknown``).
        length: prompt positions p.
        seed: the run's seed (None when unknown).
        status: running, finished, interrupted, failed, or unknown.
        kind: encoder, causal or seq2seq.
        labels: the task's class labels (empty when unknown).
        init_details: what the init recorded (its token ids per position, its seed, ...).
        fingerprint: the model's fingerprint, when probe trained the run.
        task / task_form: the task ("encoder-classification") and its form ("cosine", "verbaliser", "generate").
        optimizer / lr / steps / snapshot_every / eval_every: the training schedule.
        data: the training data (:class:`DataRecord`).
        evaluation: which rows each figure was measured on.
        config: the :class:`probe.training.config.TrainConfig` as a dict.
        zero_shot_accuracy: the frozen model's test accuracy.
        final: the final test figures by measure name (``soft_accuracy``, ``discretised_accuracy``).
        created / updated / finished: times (seconds since the epoch).
        last_step / resumed_from: where the run stopped and where it was last resumed from.
        resumed_exactly: whether that resume restored the optimizer's state saved with the snapshot (False: it
            restarted the optimizer, so the run's numbers differ from an uninterrupted run's).
        source: "recorded" for runs written by :func:`probe.track` or the Trainer callback.
        layout: the other tool's layout a read-only run was opened from.
        trainer: the Hugging Face Trainer's settings, for runs recorded by its callback.
        extra: fields the user asked to record (``record(..., extra=...)``).
        unknown: keys this probe does not know, kept and written back as they were.
    """

    model: str | None
    init: str
    length: int = field(metadata={"minimum": 1})
    seed: int | None
    status: str = "running"
    kind: str | None = None
    labels: list[str] = field(default_factory=list)
    init_details: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    task: str | None = None
    task_form: str | None = None
    optimizer: str | None = None
    lr: float | None = None
    steps: int | None = None
    snapshot_every: int | None = field(default=None, metadata={"minimum": 1})
    eval_every: int | None = field(default=None, metadata={"minimum": 1})
    data: DataRecord | None = None
    evaluation: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    zero_shot_accuracy: float | None = None
    final: dict[str, float] = field(default_factory=dict)
    created: float | None = None
    updated: float | None = None
    finished: float | None = None
    last_step: int | None = None
    resumed_from: int | None = None
    resumed_exactly: bool | None = None
    source: str | None = None
    layout: str | None = None
    trainer: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    unknown: dict[str, Any] = field(default_factory=dict)
    format: int = RUN_FORMAT

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"run status {self.status!r} is not known; expected one of {', '.join(STATUSES)}")
        if isinstance(self.length, bool) or not isinstance(self.length, int) or not 0 < self.length <= MAX_POSITIONS:
            raise ValueError(f"prompt length {self.length!r} is not a number of positions from 1 to {MAX_POSITIONS}")

    # -- the figures -------------------------------------------------------------------------------------------

    @property
    def soft_accuracy(self) -> float | None:
        """The soft prompt's final test accuracy."""
        return self.final.get(SOFT)

    @property
    def discretised_accuracy(self) -> float | None:
        """The final test accuracy with every position read as its nearest token."""
        return self.final.get(DISCRETISED)

    @property
    def test_rows(self) -> int | None:
        """How many test rows the final figures were measured on."""
        return self.data.test_size if self.data is not None else None

    def replace(self, **changes: Any) -> Manifest:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    # -- on disk -------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``manifest.json``: known fields (empty optional ones left out), the user's
        ``extra``, then the unknown keys as they were read."""
        out: dict[str, Any] = {"format": self.format}
        for f in dataclasses.fields(self):
            if f.name in ("format", "unknown"):
                continue
            value = getattr(self, f.name)
            if f.name in _REQUIRED or value not in (None, {}, []) or f.name == "labels":
                out[f.name] = value.to_dict() if isinstance(value, DataRecord) else value
        return {**out, **self.unknown}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<manifest>") -> Manifest:
        """Read a manifest of any earlier version; wrong types are a ``ValueError`` that names the field.

        Raises:
            ValueError: not an object, a missing required field, another format, or a field of the wrong type.
        """
        f = FieldReader(data, source, "run manifest")
        missing = [name for name in _REQUIRED if name not in f.data]
        if missing:
            raise ValueError(f"run manifest '{source}' lacks {missing}; it was not written by probe")
        if f.data["format"] != RUN_FORMAT:
            raise ValueError(
                f"run manifest '{source}' has format {f.data['format']!r}; this probe reads format {RUN_FORMAT}"
            )
        final = f.mapping("final", None, optional=True) or {}
        figures = {}
        for key, value in final.items():
            if value is not None:
                figures[measure_name(key)] = FieldReader(final, source, "run manifest 'final'").number(key)
        kept = f.unknown({fld.name for fld in dataclasses.fields(cls)}, warn=False)  # written back as they were
        return cls(**f.fields_of(cls, final=figures, status=_status(f), unknown=kept))


_REQUIRED = ("format", "model", "init", "length", "seed", "status")


def _status(f: FieldReader) -> str:
    status = f.text("status")
    if status not in STATUSES:
        raise f.error("status", status, f"one of {', '.join(STATUSES)}")
    return status


def read_manifest(folder: Path) -> Manifest:
    """The manifest of the run in ``folder``.

    Raises:
        FileNotFoundError: the folder has no manifest.
        ValueError: the manifest is corrupt, of another format, or has a field of the wrong type.
    """
    path = folder / MANIFEST
    try:
        data = read_json(path, what="run manifest")
    except FileNotFoundError as e:
        raise FileNotFoundError(f"'{folder}' is not a probe run: it has no {MANIFEST}") from e
    return Manifest.from_dict(data, source=str(path))


def _same_path(a: str, b: str) -> bool:
    """Whether two data names are the same set (equal names, or paths of one file)."""
    return a == b or (Path(a).exists() and Path(b).exists() and Path(a).resolve() == Path(b).resolve())


def recorded_path(data: str) -> str:
    """A run's data as its manifest records it: a file by its absolute path (read from any folder; the config keeps
    the path as given), a bundled set or data from memory by name."""
    return str(Path(data).resolve()) if Path(data).is_file() else data
