"""What the commands that train a grid of runs (frontier, wayward, audit) share: the settings they were given,
the executor checked before anything is timed or written, and the estimate printed first."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal

from probe.cli.options import Command, option


@dataclass(kw_only=True)
class SweepOptions(Command):
    """The options of every grid command, listed after the command's own (``probe COMMAND --help``)."""

    model: str = option("default", "model name or folder (default: the bundled default)")
    init: str = option("class-label", "the init of every run (default class-label)")
    length: int = option(20, "prompt positions (default 20)", positive=True)
    task: Literal["cosine", "verbaliser"] = option("cosine", "encoder task form (default cosine)")
    executor: str = option("inline", "where the runs train: inline, processes:N, dask://HOST:PORT (default inline)")
    force: bool = option(False, "retrain runs in --out that were saved with other settings")
    no_progress: bool = option(False, "hide the progress bars")


def sweep_settings(command: Any, *names: str) -> dict[str, Any]:
    """The command's ``--seeds N`` as the seeds 0..N-1, and each option of ``names`` that was given."""
    settings: dict[str, Any] = {"seeds": tuple(range(command.seeds))} if command.seeds else {}
    return settings | {name: getattr(command, name) for name in names if getattr(command, name)}


def check_executor(spec: str) -> None:
    """Refuse an unknown executor or an unreachable scheduler (one line) before anything is timed or written."""
    from probe.experiments.grid import executor_for

    with executor_for(spec):
        pass


def announce(text: str) -> None:
    """The estimate, on stderr before the work starts."""
    print(text, file=sys.stderr, flush=True)
