"""Files probe writes and reads back: atomic writes, JSON made safe, and verified on-disk caches.

- Atomic writes: bytes go to a temp file in the same folder, are fsynced, then ``os.replace``-d into place, so a
  reader sees the old file or the whole new one, never a part.
- :func:`to_jsonable` is the one JSON sanitiser: NaN and infinities become null, numpy scalars and arrays plain.
- Caches: :func:`cache_file` names an entry from its kind and its key (everything the cached value depends on),
  under ``cache_dir`` or probe's cache folder. An entry is safetensors arrays plus a JSON meta that vouches for
  them by sha256. The arrays are written first and the meta last, so a crash in between leaves a meta that does
  not match; a reader then treats the entry as absent and the caller rebuilds it. Nothing here unpickles.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import hashlib
import json
import logging
import math
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part.

    The new file keeps the old one's permissions, or gets the umask's default for a new file (a temp file alone
    would be private to its owner, so a dashboard or a colleague running as another user could not read the run).
    A path that is not a regular file (``/dev/null``, ``/dev/stdout``, a pipe) is written to as it is: replacing
    it would put a file where the device was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        info = os.stat(path)
        mode = stat.S_IMODE(info.st_mode)
    except FileNotFoundError:
        info, mode = None, 0o666 & ~_umask()
    if info is not None and not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
        with open(path, "wb") as f:
            f.write(data)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask (read by setting it and putting it back, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """:func:`atomic_write_bytes` for an indented JSON document (sanitised by :func:`to_jsonable`)."""
    atomic_write_text(path, dumps(obj) + "\n")


# --------------------------------------------------------------------------------------------- read budgets

MAX_POSITIONS = 100_000
"""No real prompt is this long: the one cap on positions, for every loader, adapter, manifest and hard prompt."""
MAX_READ_BYTES = 2**30
"""What one prompt file may expand to in memory by default (a real prompt is kilobytes); uploads get less."""
_BUDGET: contextvars.ContextVar[int] = contextvars.ContextVar("probe_read_budget", default=MAX_READ_BYTES)


@contextlib.contextmanager
def read_budget(max_bytes: int) -> Iterator[None]:
    """Within this block, no loader materialises more than ``max_bytes`` from one file (counted from the real
    data: array headers, stored members, bytes actually inflated; never from a size a file declares)."""
    token = _BUDGET.set(min(int(max_bytes), _BUDGET.get()))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def budget() -> int:
    """The bytes one file may expand to here (see :func:`read_budget`)."""
    return _BUDGET.get()


def check_budget(nbytes: int, what: str) -> None:
    """Refuse to read ``nbytes`` for ``what`` when it is over the budget.

    Raises:
        ValueError: naming what, how much, and the limit.
    """
    limit = _BUDGET.get()
    if nbytes > limit:
        raise ValueError(
            f"{what} would take {_mb(nbytes)} in memory; the limit is {_mb(limit)}. "
            "A soft prompt is far smaller: this is not one"
        )


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n < 2**40 else f"{n / 2**40:.0f} TB"


def escapes(path: Path, root: Path) -> list[Path]:
    """The entries under ``path`` (itself included) whose real location, symlinks followed, is outside ``root``."""
    root = root.resolve()
    found = [path] if not path.resolve().is_relative_to(root) else []
    if path.is_dir() and not found:
        for folder, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                entry = Path(folder) / name
                if not entry.resolve().is_relative_to(root):
                    found.append(entry)
    return found


# ----------------------------------------------------------------------------------------------------- JSON


def to_jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON data: NaN / Inf become None, numpy scalars and arrays become numbers and lists,
    tuples become lists, dataclasses become dicts, enums their values, paths text."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    return str(obj)


def dumps(obj: Any, *, indent: int | None = 2) -> str:
    """JSON text of ``obj`` after :func:`to_jsonable` (strict JSON: no NaN)."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)


DEFAULT_RUNS_DIR = "probe-runs"


def default_runs_dir() -> Path:
    """``$PROBE_RUNS_DIR``, else ``./probe-runs``."""
    return Path(os.environ.get("PROBE_RUNS_DIR") or DEFAULT_RUNS_DIR)


def holds_nothing(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is missing or holds no entries but hidden ones (``.probe-demo.log``): no run can be in it.
    Answered without importing torch, so a command can decide at once what an empty folder needs."""
    try:
        return not any(not entry.name.startswith(".") for entry in os.scandir(Path(path).expanduser()))
    except (FileNotFoundError, NotADirectoryError):
        return True


# ---------------------------------------------------------------------------------------------------- caches


def cache_root() -> Path:
    """probe's cache folder: ``$PROBE_CACHE_DIR``, else ``$XDG_CACHE_HOME/probe``, else ``~/.cache/probe``."""
    env = os.environ.get("PROBE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "probe"


def key_digest(key: dict[str, Any], length: int = 24) -> str:
    """A short stable name for a cache key (sha256 of its canonical JSON)."""
    return hashlib.sha256(json.dumps(to_jsonable(key), sort_keys=True).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class CacheEntry:
    """One verified cache entry: ``meta`` (JSON) vouches for ``arrays`` (safetensors); ``key`` must match."""

    meta: Path
    arrays: Path
    key: dict[str, Any]

    def read(self, check: Callable[[dict[str, np.ndarray]], bool] | None = None) -> dict[str, np.ndarray] | None:
        """The arrays, when the entry exists, its meta holds the key and vouches for the bytes, and ``check``
        (what the caller knows must hold, e.g. id ranges) passes; else None, and the caller rebuilds it."""
        found = self.load(check)
        return None if found is None else found[1]

    def load(
        self, check: Callable[[dict[str, np.ndarray]], bool] | None = None
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """(meta, arrays) of a valid entry (see :meth:`read`), or None."""
        found = read_cache(self.meta, self.arrays, self.key)
        if found is None:
            return None
        try:
            ok = check is None or bool(check(found[1]))
        except (KeyError, ValueError, IndexError, TypeError) as e:
            logger.info("cache %s fails its check (%s); rebuilding", self.meta, e)
            return None
        if not ok:
            logger.info("cache %s fails its check; rebuilding", self.meta)
            return None
        return found

    def write(self, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None, *, strict: bool = False) -> None:
        """Write the arrays, then the meta (the key plus ``meta``). A read-only or full cache folder costs time,
        not correctness: the error is logged, unless ``strict``."""
        try:
            write_cache(self.meta, self.arrays, arrays, {**(meta or {}), **self.key})
        except OSError as e:
            if strict:
                raise
            logger.warning("could not write the cache %s: %s", self.meta.parent, e)


def cache_file(
    kind: str, key: dict[str, Any], cache_dir: str | os.PathLike[str] | None = None, *, name: str | None = None
) -> CacheEntry:
    """The cache entry of ``kind`` ("index", "maps", "zero-shot", ...) for ``key``.

    Args:
        kind: the subfolder of the cache folder.
        key: everything the cached value depends on; a stored entry is used only when its meta holds all of it.
        cache_dir: the cache folder (default :func:`cache_root`); a run's own folder for resumable state.
        name: the file stem (default: a digest of the key).
    """
    folder = (Path(cache_dir) if cache_dir is not None else cache_root()) / kind
    stem = name or key_digest(key)
    return CacheEntry(folder / f"{stem}.json", folder / f"{stem}.safetensors", dict(key))


def write_cache(meta_path: Path, arrays_path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``arrays`` (safetensors) then ``meta`` (JSON, with the arrays' sha256 added)."""
    from safetensors.numpy import save

    blob = save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    atomic_write_bytes(arrays_path, blob)
    record = {**to_jsonable(meta), "arrays_sha256": hashlib.sha256(blob).hexdigest()}
    atomic_write_bytes(meta_path, json.dumps(record, indent=2).encode())


def read_cache(
    meta_path: Path, arrays_path: Path, expected: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """(meta, arrays) when both files exist, the meta holds every ``expected`` item and vouches for the arrays.

    Returns None (the caller rebuilds) for a missing, partial, corrupt or foreign cache.
    """
    from safetensors.numpy import load_file

    if not meta_path.is_file() or not arrays_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta, dict):
            return None
        blob = arrays_path.read_bytes()
        wanted = to_jsonable(expected)
        mismatched = [k for k, v in wanted.items() if meta.get(k) != v]
        if mismatched or meta.get("arrays_sha256") != hashlib.sha256(blob).hexdigest():
            logger.info("cache %s does not match (%s) or is incomplete; rebuilding", meta_path, mismatched or "sha256")
            return None
        return meta, load_file(str(arrays_path))
    except (OSError, ValueError, KeyError, AttributeError, RecursionError) as e:
        logger.info("cache %s is unreadable (%s); rebuilding", meta_path, e)
        return None


def expect(value: Any, types: type | tuple[type, ...], name: str, expected: str) -> None:
    """Refuse a value of the wrong type where it enters, in one line naming the argument.

    Raises:
        TypeError: ``name is a <type>; expected <expected>``.
    """
    if not isinstance(value, types):
        raise TypeError(f"{name} is a {type(value).__name__}; expected {expected}")


def expect_path(value: Any, name: str, expected: str) -> None:
    """Refuse what cannot be a path where one enters (the wrong type, or a text too long to be one), in one line.

    Raises:
        TypeError: ``name is a <type>; expected <expected>``.
        ValueError: a text longer than any path (4,096 characters).
    """
    expect(value, (str, os.PathLike), name, expected)
    if len(str(value)) > 4096:
        raise ValueError(f"{name} is a text of {len(str(value)):,} characters; expected {expected}")
