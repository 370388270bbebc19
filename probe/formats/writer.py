"""Writing a run folder: :class:`RunWriter` owns the folder while it writes. It takes a lock (a second writer gets
a one-line error that names the holder's pid and host; a lock whose holder ended is taken over, with a log line),
writes only the names probe owns (:data:`OWNED`), refuses a folder that holds other files unless told to write
beside them, and never deletes what it did not write: starting a run over (:func:`clear_run`) deletes probe's own
files only, in the run folder and in its ``snapshots/``, ``adapter/`` and ``explain/``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from probe.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from probe.core.softprompt import check_vectors
from probe.formats.explain_record import EXPLAIN_FILE, EXPLAIN_STEPS
from probe.formats.hard_prompt import HARD_PROMPT_FILE
from probe.formats.manifest import MANIFEST, RUN_FORMAT, Manifest
from probe.formats.run import (
    ADAPTER,
    ADAPTER_FILES,
    METRICS,
    SNAPSHOT_KEY,
    SNAPSHOTS,
    Run,
    is_run_folder,
    snapshot_name,
)

logger = logging.getLogger(__name__)

LOCK = ".probe-lock"
WRITER = ".probe-writer"
"""The lock a writer holds, and the file that names its process."""
OWNED = (MANIFEST, SNAPSHOTS, METRICS, ADAPTER, HARD_PROMPT_FILE, EXPLAIN_FILE, EXPLAIN_STEPS, LOCK, WRITER)
STATES = ("hard-prompt-state.", "hard-prompt-search-state.")
"""The names probe writes in a run folder (:data:`OWNED`), and the starts of the names of the hard-prompt searches'
resumable state (PEZ's and the coordinate search's, ``probe.readings.explain.hardening``)."""


_INSIDE = {
    SNAPSHOTS: re.compile(r"\.?step-\d{8}\.safetensors(\..*\.tmp)?"),
    EXPLAIN_STEPS: re.compile(r"\.?step-\d{8}\.json(\..*\.tmp)?"),
    ADAPTER: re.compile("|".join(map(re.escape, ADAPTER_FILES))),
}
"""The files probe writes inside its folders (an atomic write's leftover temp file included): nothing else in them
is probe's."""


def owned(name: str) -> bool:
    """Whether probe writes ``name`` in a run folder."""
    return name in OWNED or name.startswith(STATES)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


class RunLock:
    """An exclusive lock on a run folder (``filelock``), with the holder's pid and host beside it (``.probe-writer``).

    The operating system drops the lock when its holder ends, however it ends, so a lock is never stranded by a
    crash; a holder's name left behind by a process that ended is logged as taken over.
    """

    def __init__(self, folder: Path) -> None:
        from filelock import FileLock

        self.folder = folder
        self._lock = FileLock(folder / LOCK, blocking=False, thread_local=False)

    def holder(self) -> tuple[int | None, str]:
        """(pid, host) of the process named as the writer, or (None, "") when none is named."""
        try:
            pid, _, host = (self.folder / WRITER).read_text().strip().partition(" ")
            return int(pid), host
        except (OSError, ValueError):
            return None, ""

    def acquire(self) -> None:
        """Take the lock.

        Raises:
            ValueError: another live process holds it (naming its pid and host).
        """
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            pid, host = self.holder()
            where = f" on {host}" if host and host != socket.gethostname() else ""
            raise ValueError(
                f"run folder '{self.folder}' is being written by process {pid or 'unknown'}{where}; wait for it to "
                "finish or stop it, then try again (two writers would interleave their steps)"
            ) from None
        pid, host = self.holder()
        if pid is not None and pid != os.getpid() and not (host == socket.gethostname() and _alive(pid)):
            logger.warning(
                "run folder '%s': taking over the lock of process %s on %s, which ended", self.folder, pid, host
            )
        atomic_write_text(self.folder / WRITER, f"{os.getpid()} {socket.gethostname()}\n")

    def release(self) -> None:
        """Give the lock back (the process's end gives it back too)."""
        if self._lock.is_locked:
            (self.folder / WRITER).unlink(missing_ok=True)
            self._lock.release()


def check_folder(path: Path, *, resume: bool, force: bool, overwrite: bool = False) -> None:
    """Refuse a folder probe may not write a new run into.

    Raises:
        ValueError: a run is already there (and this is no resume or overwrite); the path is a file; the folder
            holds files of someone else's (without ``force``, or ``overwrite`` of a run); or it holds a name probe
            would overwrite. A lock left by a writer that ended is no obstacle: the lock decides.
    """
    if path.exists() and not path.is_dir():
        raise ValueError(f"'{path}' is a file; a run needs a folder")
    if resume or not path.is_dir() or (overwrite and is_run_folder(path)):
        return
    if is_run_folder(path):
        raise ValueError(f"'{path}' already holds a run; pick a new --out, or resume it")
    entries = sorted(p.name for p in path.iterdir() if p.name not in (LOCK, WRITER))
    clashes = [name for name in entries if owned(name)]
    if clashes:
        raise ValueError(
            f"'{path}' already holds {clashes[0]}, a name probe writes in a run folder; move it, or pick another --out"
        )
    if entries and not force:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ValueError(
            f"'{path}' is not empty ({shown}) and is not a probe run; pick a new or empty --out, or pass --force "
            "to write the run beside those files (probe never deletes them)"
        )


def clear_run(path: Path) -> None:
    """Delete a probe run's own files from ``path`` (to retrain it), leaving everything else in the folder.

    Inside ``snapshots/``, ``adapter/`` and ``explain/`` only the files probe writes there go (a folder left empty
    goes too); the manifest goes last, so a clear that is interrupted leaves a run that can be cleared again. The
    lock is not touched: call it while holding the lock (:class:`RunWriter` with ``overwrite``), or take the lock
    here when nobody holds it.

    Raises:
        ValueError: another process is writing the run.
    """
    lock = RunLock(path)
    lock.acquire()
    try:
        _clear(path)
    finally:
        lock.release()


def _clear(path: Path) -> None:
    for entry in sorted(path.iterdir(), key=lambda p: p.name == MANIFEST):
        if not owned(entry.name) or entry.name in (LOCK, WRITER):
            continue
        if entry.is_symlink() or not entry.is_dir():
            entry.unlink()
            continue
        pattern = _INSIDE.get(entry.name)
        for inner in entry.iterdir():
            if pattern is not None and pattern.fullmatch(inner.name) and not inner.is_dir():
                inner.unlink()
        if not any(entry.iterdir()):
            entry.rmdir()


class RunWriter:
    """Writes a run folder as training goes. Only one process (rank 0) should hold one.

    Args:
        path: the run folder (created; must not already hold a run unless ``resume``).
        manifest: the manifest to start with (a :class:`Manifest`, or its fields as a dict, checked the same way).
        resume: open an existing run to continue it.
        force: write a new run into a folder that holds other files (they are left alone).
        overwrite: start the run already in ``path`` over: its probe files are deleted under the lock
            (:func:`clear_run`); the user's files, in the folder and in probe's subfolders, stay.

    Raises:
        ValueError: see :func:`check_folder`; or another process is writing the folder.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        manifest: Manifest | dict[str, Any],
        *,
        resume: bool = False,
        force: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        if isinstance(manifest, dict):
            fields = {"format": RUN_FORMAT, "status": "running", "model": None, "seed": None, **manifest}
            manifest = Manifest.from_dict(fields, source=str(self.path / MANIFEST))
        check_folder(self.path, resume=resume, force=force, overwrite=overwrite)
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock = RunLock(self.path)
        self.lock.acquire()
        try:  # a write that fails (a full disk) gives the lock back: the same command can run again
            if overwrite and not resume and is_run_folder(self.path):
                _clear(self.path)
            (self.path / SNAPSHOTS).mkdir(exist_ok=True)
            self.manifest = manifest if manifest.created is not None else manifest.replace(created=time.time())
            self.write_manifest()
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        """Release the folder (the writer can no longer be used)."""
        self.lock.release()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_manifest(self) -> None:
        """Atomically rewrite manifest.json."""
        self.manifest = self.manifest.replace(updated=time.time())
        atomic_write_json(self.path / MANIFEST, self.manifest.to_dict())

    def update(self, **fields: Any) -> None:
        """Set manifest fields and rewrite it."""
        self.manifest = self.manifest.replace(**fields)
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
        run = Run(self.path, self.manifest)
        for s in run.steps:
            if s > step:
                (self.path / SNAPSHOTS / snapshot_name(s)).unlink(missing_ok=True)
        records = [r for r in run.records() if r.get("step", 0) <= step]
        atomic_write_bytes(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in records).encode())
