"""Child processes that work beside a server: ``python -m probe ...`` started detached from the terminal, writing
to a log, and stopped with their parent (Linux: the kernel signals them when it ends), so a stopped dashboard
leaves no orphan training or explaining on."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

BACKGROUND_NICENESS = 10
"""How much lower the priority of work beside a server is: the pages answer first, the training takes the rest."""


def _background_child() -> None:  # runs in the child, before exec
    with contextlib.suppress(OSError):  # a lower priority is always allowed; never fail a start over it
        os.nice(BACKGROUND_NICENESS)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the child finishes on its own, and stops with its session


def start_beside(args: list[str], log: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    """Run ``python -m probe *args`` in a child process whose output is appended to ``log`` (its folder made);
    the child gets SIGTERM when this process ends. Returns at once."""
    path = Path(log)
    path.parent.mkdir(parents=True, exist_ok=True)

    def start() -> subprocess.Popen[bytes]:
        with open(path, "a", encoding="utf-8") as out:  # the child holds its own copy of the handle
            return subprocess.Popen(
                [sys.executable, "-m", "probe", *args],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                preexec_fn=_background_child,
            )

    if threading.current_thread() is threading.main_thread():
        return start()
    return _in_lasting_thread(start)


_REQUESTS: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]]] = queue.Queue()
_SPAWNER: list[threading.Thread] = []
_SPAWNER_LOCK = threading.Lock()


def _in_lasting_thread(start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Start the child from a thread that lives as long as this process: the kernel's parent-death signal follows
    the thread that started a child, and a server's script threads end after every rerun (Streamlit), which would
    stop the child at once."""
    with _SPAWNER_LOCK:
        if not _SPAWNER:
            _SPAWNER.append(threading.Thread(target=_serve_starts, name="probe-children", daemon=True))
            _SPAWNER[0].start()
    answer: queue.Queue[Any] = queue.Queue(maxsize=1)
    _REQUESTS.put((start, answer))
    result = answer.get()
    if isinstance(result, BaseException):
        raise result
    return result


def _serve_starts() -> None:
    while True:
        start, answer = _REQUESTS.get()
        try:
            answer.put(start())
        except Exception as e:  # handed back to the caller, who raises it
            answer.put(e)


def first_line(log: str | os.PathLike[str], prefix: str, *, head: int = 4096) -> str:
    """The first line of ``log`` that starts with ``prefix``, among its first ``head`` bytes ('' when none): a
    child's opening lines (an estimate) without reading the progress it wrote since."""
    try:
        with open(log, "rb") as f:
            text = f.read(head).decode("utf-8", errors="replace")
    except OSError:
        return ""
    return next((line.strip() for line in text.replace("\r", "\n").split("\n") if line.startswith(prefix)), "")


def last_line(log: str | os.PathLike[str], *, tail: int = 4096) -> str:
    """The last line a child wrote to ``log`` ('' when there is none): a progress bar's latest state counts as a
    line (bars end their updates with a carriage return, not a newline)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.path.getsize(log) - tail))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    return next((line for line in reversed(lines) if line), "")
