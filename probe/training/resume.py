"""Where a run starts: a fresh init, or, on resume, the last snapshot of a run probe trained with the same
config; and the data record a resumed run keeps (the hash it was trained on, a changed file refused or recorded)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from probe.core.models import LoadedModel
from probe.formats.discovery import load_run
from probe.formats.manifest import DataRecord, Manifest
from probe.training.config import TrainConfig
from probe.training.inits import initialise


def starting_point(
    config: TrainConfig, model: LoadedModel, labels: list[str], out: Path, resume: bool
) -> tuple[int, np.ndarray, dict[str, Any]]:
    """(first step, prompt vectors, init record): the last snapshot of the run in ``out`` when resuming (with the
    run's own config, or one that only has more steps: :meth:`TrainConfig.continues`), else a fresh init of
    ``config``.

    Raises:
        ValueError: resuming a run probe did not train, or one made with another config.
    """
    if resume:
        run = load_run(out)
        if run.manifest.config is None:
            raise ValueError(
                f"run '{out}' was not trained by probe train (it was recorded from another loop, or is "
                "another tool's folder), so probe train cannot resume it; resume it in the loop that wrote it"
            )
        if not (config.same_as(run.manifest.config) or config.continues(run.manifest.config)):
            raise ValueError(
                f"run '{out}' was made with another config; resume it with its own (probe train --resume), in which "
                "only --steps may grow"
            )
        if run.steps:
            return run.steps[-1], run.snapshot(run.steps[-1]).vectors, run.manifest.init_details
    init = initialise(
        config.init,
        model,
        config.length,
        seed=config.seed,
        labels=labels,
        text=config.init_text,
        scale=config.init_scale,
        top_n=config.vocab_top_n,
    )
    return 0, init.vectors, {"method": init.method.value, "token_ids": init.token_ids, **init.details}


def resumed_data(before: Manifest, now: DataRecord, *, allow_changed: bool, run: Path) -> DataRecord:
    """The data record of a resumed run: the hash it was trained on stays; a changed file is refused, or, with
    ``allow_changed`` (``--data-changed-ok``), recorded beside it."""
    if before.data is None:
        return now
    changed = before.data.check(now.sha256, allow_changed=allow_changed, run=str(run))
    return replace(before.data, changed_sha256=changed or before.data.changed_sha256)
