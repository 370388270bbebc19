"""Sets of independent runs (a grid: replicate's, frontier's, wayward's), trained through a
``concurrent.futures.Executor``, skipping the runs already finished with the same settings.

- in-process by default (one model loaded once, shared by every run);
- ``processes:N``: N worker processes of this machine;
- ``dask://HOST:PORT``: a ``dask.distributed`` scheduler (``pip install probe[dask]``);
- or an ``Executor`` a Python caller passes.

A run's numbers depend only on its settings (seeded batches, seeded init), not on where it ran. :func:`estimate_seconds`
times one step and one scoring pass on the real data first, so a grid says how long it will take.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from probe.core.frames import as_splits
from probe.core.models import LoadedModel, load_model
from probe.formats.discovery import load_run
from probe.formats.run import Run, is_run_folder
from probe.training.config import TrainConfig

EXECUTORS = "inline, processes:N, dask://HOST:PORT"
RUNS = "runs"
"""A sweep's runs live in ``OUT/runs/<name>``."""


@dataclass(frozen=True)
class Cost:
    """Work besides training, in the units :func:`estimate_seconds` times: test rows scored, training steps (a
    search's steps cost about one each), and seconds of anything else."""

    rows: float = 0.0
    steps: float = 0.0
    seconds: float = 0.0


class InlineExecutor(concurrent.futures.Executor):
    """Runs each job at once, in this process (the default: one model, loaded once, serves every run)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except (KeyboardInterrupt, SystemExit):
            raise  # Ctrl-C stops the grid here: the runs after this one never start
        except BaseException as e:  # the caller sees it when it asks for the result
            future.set_exception(e)
        return future


@contextlib.contextmanager
def executor_for(spec: str | concurrent.futures.Executor | None) -> Iterator[concurrent.futures.Executor]:
    """The executor ``spec`` names (see the module docstring), shut down afterwards if it was made here.

    Raises:
        ValueError: an unknown spec, a bad worker count, or a scheduler that cannot be reached (one line).
    """
    if isinstance(spec, concurrent.futures.Executor):
        yield spec
        return
    if spec in (None, "", "inline"):
        yield InlineExecutor()
        return
    assert isinstance(spec, str)
    if spec.startswith("processes:"):
        count = spec.removeprefix("processes:")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--executor {spec!r}: expected processes:N with N a positive number of workers")
        import multiprocessing

        pool = concurrent.futures.ProcessPoolExecutor(int(count), mp_context=multiprocessing.get_context("spawn"))
        with pool:
            yield pool
        return
    if spec.startswith("dask://"):
        yield from _dask(spec)
        return
    raise ValueError(f"--executor {spec!r} is not known; expected one of {EXECUTORS}")


CONNECT_SECONDS = 15.0
"""How long a dask scheduler has to answer, handshake included (a socket that accepts and never answers would
otherwise hold the command for minutes)."""


def _dask(spec: str) -> Iterator[concurrent.futures.Executor]:
    try:
        from distributed import Client
    except ImportError as e:
        raise ValueError("--executor dask://... needs dask's distributed: pip install 'probe[dask]'") from e
    address = "tcp://" + spec.removeprefix("dask://")
    refused = _unreachable(address)
    if refused is not None:  # nothing listens there: say so at once, not after the client's retries
        raise ValueError(
            f"no dask scheduler answers at {address} ({type(refused).__name__}: {str(refused)[:80]}); start one or "
            "fix the address"
        )
    outcome: dict[str, Any] = {}

    def connect() -> None:  # in a thread, so that a handshake that never ends cannot hold the command
        try:
            outcome["client"] = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
        except BaseException as e:  # a peer that answers garbage raises anything (MemoryError, ...)
            outcome["error"] = e

    thread = threading.Thread(target=connect, name="probe-dask-connect", daemon=True)
    thread.start()
    thread.join(CONNECT_SECONDS + 5)
    if thread.is_alive():
        raise ValueError(
            f"{address} accepted the connection but answered nothing a dask scheduler says within "
            f"{CONNECT_SECONDS:g} s; start a scheduler there (dask scheduler) or fix the address"
        )
    if "error" in outcome:
        error = outcome["error"]
        raise ValueError(
            f"no dask scheduler answers at {address} ({type(error).__name__}: {str(error)[:80]}); start one or fix "
            "the address"
        ) from error
    client = outcome["client"]
    try:
        yield client.get_executor()
    finally:
        client.close()


def _unreachable(address: str) -> OSError | None:
    """The error of a plain TCP connection to ``address`` (``tcp://host:port``) when nothing accepts it there (a
    refused or timed-out connection), else None (also when the address is not host:port: the client judges it)."""
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS):
            return None
    except OSError as e:
        return e


def stop_workers(pool: concurrent.futures.Executor, futures: list[concurrent.futures.Future[Any]]) -> None:
    """Stop a grid at once: pending runs cancelled, and a process pool's workers terminated and reaped (a signal
    sent to the parent does not reach them), so no orphan keeps training or holds a run folder's lock. Each
    stopped run is resumed, from its last snapshot, by running the grid again."""
    for future in futures:
        future.cancel()
    if isinstance(pool, concurrent.futures.ProcessPoolExecutor):
        workers = list((getattr(pool, "_processes", None) or {}).values())  # no public handle on them
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join(timeout=10)
        pool.shutdown(wait=False, cancel_futures=True)


def missing(configs: dict[str, TrainConfig], runs_dir: str | os.PathLike[str]) -> dict[str, TrainConfig]:
    """The runs of ``configs`` that ``runs_dir`` does not hold finished with the same settings."""
    out = {}
    for name, config in configs.items():
        path = Path(runs_dir) / name
        if is_run_folder(path):
            run = load_run(path)
            if run.status == "finished" and config.same_as(run.manifest.config):
                continue
        out[name] = config
    return out


@functools.lru_cache(maxsize=2)
def _worker_model(name: str) -> LoadedModel:
    return load_model(name, device="cpu")


def train_one(
    config: TrainConfig, path: str, model: LoadedModel | None = None, progress: bool = False, overwrite: bool = False
) -> str:
    """Train (or resume) one run of a grid into ``path``, or start it over (``overwrite``: probe's own files of the
    run there deleted, the user's kept); what a worker runs. Returns the run's folder."""
    from probe.training.trainer import train

    model = model or _worker_model(config.model)
    resume = is_run_folder(path) and not overwrite
    train(config, path, model=model, resume=resume, overwrite=overwrite, progress=progress)
    return path


def run_grid(
    configs: dict[str, TrainConfig],
    runs_dir: str | os.PathLike[str],
    *,
    executor: str | concurrent.futures.Executor | None = None,
    model: LoadedModel | None = None,
    force: bool = False,
    progress: bool = False,
) -> list[Run]:
    """Every run of the grid in ``runs_dir``: finished ones with the same settings kept, the others trained (an
    interrupted one resumed, and one whose config only asks for more steps continued) through ``executor``; in the
    order of ``configs``.

    Raises:
        ValueError: a run in ``runs_dir`` has other settings (``force`` retrains it, deleting only probe's files).
    """
    todo, again = {}, set()
    for name, config in configs.items():
        path = Path(runs_dir) / name
        if is_run_folder(path):
            run = load_run(path)
            if config.continues(run.manifest.config):
                pass  # a run asked for more steps: resumed from its last snapshot, as if it had never stopped
            elif not config.same_as(run.manifest.config):
                if not force:
                    raise ValueError(
                        f"'{path}' holds a run with other settings; pass --force to retrain it, or another --out"
                    )
                again.add(name)  # started over by its writer, under its lock: only probe's files go
            elif run.status == "finished":
                continue
        todo[name] = config
    with executor_for(executor) as pool:
        inline = isinstance(pool, InlineExecutor)
        shared = (model or load_model(next(iter(todo.values())).model, device="cpu")) if inline and todo else None
        futures = []
        try:
            for n, c in todo.items():
                where = str(Path(runs_dir) / n)
                futures.append(pool.submit(train_one, c, where, shared, progress and inline, n in again))
            for future in futures:
                future.result()  # a failed run fails the grid, with its own error
        except (KeyboardInterrupt, SystemExit):
            stop_workers(pool, futures)  # a signal to this process reaches its workers too
            raise
    return [load_run(Path(runs_dir) / name) for name in configs]


def pass_seconds(config: TrainConfig, model: LoadedModel, lengths: list[int]) -> dict[int, tuple[float, float]]:
    """Prompt length -> (seconds of one training step, seconds of scoring one test row), timed here on
    ``config``'s data: the fastest of three after a warm-up (the first passes pay for allocation and kernel
    choice, several seconds on a cold process, which would otherwise be counted for every step)."""
    import torch

    from probe.tasks.kinds import make_task, wrap_with_prompt

    splits = as_splits(config.data, text_column=config.text_column, label_column=config.label_column, seed=config.seed)
    batch, targets = splits.train.texts[: config.batch_size], splits.train.targets[: config.batch_size]
    probe_rows = splits.test.texts[:64]

    def timed(fn: Any) -> float:
        fn()
        times = []
        for _ in range(3):
            began = time.perf_counter()
            fn()
            times.append(time.perf_counter() - began)
        return min(times)

    out = {}
    for length in lengths:
        vectors = np.tile(model.embeddings_numpy()[:1], (length, 1))
        task = make_task(model, wrap_with_prompt(model, vectors), splits.train.label_names, form=config.task)
        step = timed(lambda task=task: task.loss(batch, targets).backward())
        with torch.inference_mode():
            row = timed(lambda task=task: task.score_all(probe_rows)) / len(probe_rows)
        out[length] = (step, row)
    return out


def estimate_seconds(
    configs: dict[str, TrainConfig],
    runs_dir: str | os.PathLike[str],
    *,
    model: LoadedModel | None = None,
    scoring_passes: int = 0,
    reading: Cost | None = None,
) -> tuple[float, int]:
    """(seconds, runs): how long training the missing runs of ``configs`` should take here, in one process, then
    ``scoring_passes`` passes over the test rows per trained run, and ``reading`` (the measurement of every run).

    Measured, not guessed: one training step is timed at each prompt length on the real data, and one scoring
    pass per length on test rows; the steps (two passes each with a faithfulness weight strictly between 0 and 1)
    and the evaluated rows are then added up, the zero-shot pass once.
    """
    seconds, runs, _ = estimate_range(configs, runs_dir, model=model, scoring_passes=scoring_passes, reading=reading)
    return seconds, runs


def estimate_range(
    configs: dict[str, TrainConfig],
    runs_dir: str | os.PathLike[str],
    *,
    model: LoadedModel | None = None,
    scoring_passes: int = 0,
    reading: Cost | None = None,
    further: Cost | None = None,
) -> tuple[float, int, float]:
    """:func:`estimate_seconds`, and the seconds ``further`` may add (work that may follow: steps at the first
    config's length), timed by the same passes."""
    todo = missing(configs, runs_dir)
    if not todo and (reading is None or reading == Cost()) and (further is None or further == Cost()):
        return 0.0, 0, 0.0
    first = next(iter(todo.values()), next(iter(configs.values())))
    model = model or load_model(first.model, device="cpu")
    splits = as_splits(first.data, text_column=first.text_column, label_column=first.label_column, seed=first.seed)
    per_length = pass_seconds(first, model, sorted({c.length for c in todo.values()} | {first.length}))
    step, row = per_length[first.length]
    test_rows = min(len(splits.test), first.test_size or len(splits.test))
    seconds = test_rows * row  # the zero-shot pass, once per model and data (then cached)
    if reading is not None:
        seconds += reading.rows * row + reading.steps * step + reading.seconds
    more = 0.0 if further is None else further.rows * row + further.steps * step + further.seconds
    for config in todo.values():
        step, row = per_length[config.length]
        passes = 2 if 0 < config.faithfulness_weight < 1 else 1
        during = min(config.eval_size, test_rows)
        scoring = (during + (2 + scoring_passes) * test_rows) * row
        seconds += config.steps * step * passes + scoring + 2.0  # + loading and writing
    return seconds, len(todo), more
