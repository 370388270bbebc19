"""Thread counts: torch and FAISS each bring their own OpenMP, so probe gives both the same explicit count."""

from __future__ import annotations

import os

_THREADS_SET = False
BLAS_THRESHOLD = 20


def configure_threads(n: int | None = None) -> int:
    """Give torch and FAISS the same explicit thread count.

    Args:
        n: threads; default ``$PROBE_THREADS`` or the number of CPUs this process may use.

    Returns:
        The thread count in force.

    Raises:
        ValueError: ``n`` or ``$PROBE_THREADS`` is not a positive whole number (an empty or unset variable is
            the CPU count).
    """
    global _THREADS_SET
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"threads is {n!r}; expected a positive number of threads")
    if n is None and _THREADS_SET:
        return env_threads() or _cpu_count()
    n = n or env_threads() or _cpu_count()
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


def env_threads() -> int | None:
    """``$PROBE_THREADS`` as a number of threads (None when unset, empty or 0: the CPU count).

    Raises:
        ValueError: it is set to anything but a positive whole number.
    """
    text = os.environ.get("PROBE_THREADS", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"PROBE_THREADS is {text!r}; expected a positive number of threads, or unset it")
    return int(text) or None  # 0: the CPU count, as before


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)
