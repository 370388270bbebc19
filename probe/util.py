"""Small shared helpers: atomic writes, the cache folder, thread counts, file hashing."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

_THREADS_SET = False
BLAS_THRESHOLD = 20


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part.

    The bytes go to a temp file in the same folder, are flushed and fsynced, then ``os.replace``-d into place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """:func:`atomic_write_bytes` for an indented JSON document."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def cache_root() -> Path:
    """probe's cache folder: ``$PROBE_CACHE_DIR``, else ``$XDG_CACHE_HOME/probe``, else ``~/.cache/probe``."""
    env = os.environ.get("PROBE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "probe"


def configure_threads(n: int | None = None) -> int:
    """Give torch and FAISS the same explicit thread count (both bring their own OpenMP).

    Args:
        n: threads; default ``$PROBE_THREADS`` or the number of CPUs this process may use.

    Returns:
        The thread count in force.
    """
    global _THREADS_SET
    if n is None and _THREADS_SET:
        return int(os.environ.get("PROBE_THREADS", 0)) or _cpu_count()
    n = n or int(os.environ.get("PROBE_THREADS", 0)) or _cpu_count()
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
        # faiss 1.15 sends query batches below 128,000 floats (330 queries at d=384) down a scalar path that
        # is 7x slower than its BLAS path here; 20 queries is where BLAS starts to pay (bench/results.md).
        faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD
    except ImportError:  # pragma: no cover
        pass
    _THREADS_SET = True
    return n


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)
