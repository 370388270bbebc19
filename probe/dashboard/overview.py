"""The runs at a glance, read from their manifests alone: what the first page shows within a second or two,
while torch and the model load. The manifest's owner (:mod:`probe.formats.manifest`) needs neither."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from probe.core.names import DISCRETISED, SOFT, ZERO_SHOT
from probe.formats.manifest import MANIFEST, read_manifest

COLUMNS = ["run", "init", "positions", "steps", "status", "progress", SOFT, DISCRETISED, ZERO_SHOT]


def quick_overview(folder: str) -> pd.DataFrame:
    """One row per probe run folder under ``folder`` whose manifest reads; anything else is left out."""
    rows = []
    for path in sorted(Path(folder).expanduser().glob(f"*/{MANIFEST}")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the full page warns about what it skips
                m = read_manifest(path.parent)
        except (OSError, ValueError):
            continue
        figures = [m.final.get(SOFT), m.final.get(DISCRETISED), m.zero_shot_accuracy]
        rows.append([path.parent.name, m.init, m.length, m.steps, m.status, _progress(path.parent, m.steps), *figures])
    return pd.DataFrame(rows, columns=COLUMNS).astype(object)


def _progress(run: Path, steps: int | None) -> str:
    """How far a run is, from its newest snapshot (a run still training shows where it is)."""
    done = [int(p.stem.removeprefix("step-")) for p in (run / "snapshots").glob("step-*.safetensors")]
    newest = max(done, default=0)
    return f"step {newest} of {steps}" if steps else f"step {newest}"
