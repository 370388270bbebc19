"""Prefixes on the dashboard: folders of ``PREFIX_TUNING`` / ``CARTRIDGE`` checkpoints under the runs folder, read
per layer with probe's own readings (:func:`probe.readings.prefix.prefix_layers`,
:func:`probe.readings.prefix_drift.prefix_drift`), and the tables the pages show of them.

A prefix is a key and a value per layer, not input-embedding rows, so it is not a :class:`probe.formats.run.Run`:
the input-space pages (the map, compare) leave it out, and the Nearest tokens and Drift pages read it one layer
at a time.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from probe.core.io import escapes
from probe.core.results import shown
from probe.formats.adapters import read_adapter_config
from probe.formats.prefix import Part, PrefixPrompt, check_layer, is_prefix_adapter, load_prefix, prefix_steps

if TYPE_CHECKING:
    from probe.core.index import VocabIndex
    from probe.core.models import LoadedModel
    from probe.readings.prefix_drift import PrefixDrift
    from probe.readings.prefix_report import PrefixLayerReading, PrefixReport
    from probe.readings.projection import VocabMap

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class PrefixRun:
    """A folder of prefix checkpoints (``checkpoint-N/``, ``step-N/``, ...) or one prefix adapter (step 0).

    Attributes:
        path: the folder.
    """

    path: Path

    @property
    def name(self) -> str:
        """The folder's name."""
        return self.path.name

    @property
    def snapshots(self) -> dict[int, Path]:
        """Step -> prefix adapter folder, listed from the folder on every read (a run still training is followed)."""
        return prefix_steps(self.path) or ({0: self.path} if is_prefix_adapter(self.path) else {})

    @property
    def steps(self) -> list[int]:
        """Steps with a checkpoint, ascending."""
        return sorted(self.snapshots)

    @property
    def signature(self) -> str:
        """Changes whenever a checkpoint does: the cache key of what is read from it."""
        found = self.snapshots
        stamps = [(found[s] / "adapter_config.json").stat().st_mtime_ns for s in sorted(found)]
        return f"{self.path.resolve()}|{sorted(found)}|{stamps}"

    @cached_property
    def config(self) -> dict[str, Any]:
        """The newest checkpoint's adapter config."""
        found = self.snapshots
        return read_adapter_config(found[max(found)], kv=True)

    @property
    def model(self) -> str:
        """The model it was trained on, as runs record it ("default" when the adapter names none)."""
        from probe.core.models import canonical_name

        base = self.config.get("base_model_name_or_path")
        return canonical_name(base) if base else "default"

    @property
    def length(self) -> int:
        """Prefix positions."""
        return int(self.config["num_virtual_tokens"])

    @property
    def num_layers(self) -> int:
        """Attention layers (each with a key and a value per position)."""
        return int(self.config["num_layers"])

    @property
    def kind(self) -> str:
        """``PREFIX_TUNING`` or ``CARTRIDGE``."""
        return str(self.config["peft_type"])

    def prefix(self, step: int, model: LoadedModel) -> PrefixPrompt:
        """The prefix at ``step``, checked against ``model``.

        Raises:
            ValueError: no checkpoint at that step, or another model's prefix.
        """
        found = self.snapshots
        if step not in found:
            raise ValueError(f"prefix run '{self.path}' has no checkpoint at step {step}; it has {sorted(found)}")
        return load_prefix(found[step], model_config=model.model.config)


def prefix_runs(folder: str | os.PathLike[str]) -> list[PrefixRun]:
    """The prefix runs directly under ``folder`` (or ``folder`` itself), by name; a folder whose checkpoints cannot
    be read, or that holds a link leading outside ``folder``, is left out with a warning."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return []
    candidates = [root] if _holds_prefix(root) else sorted(c for c in root.iterdir() if _holds_prefix(c))
    found = []
    for path in candidates:
        run = PrefixRun(path)
        try:
            if escapes(path, root):
                raise ValueError("a link in it leads outside the runs folder")
            _ = run.config
        except (OSError, ValueError) as e:
            logger.warning("skipping prefix run %s: %s", path, e)
            continue
        found.append(run)
    return found


def _holds_prefix(path: Path) -> bool:
    return path.is_dir() and (is_prefix_adapter(path) or bool(prefix_steps(path)))


def read_layer(run: PrefixRun, step: int, model: LoadedModel, *, k: int, layer: int) -> PrefixReport:
    """The per-layer reading of ``run``'s prefix at ``step``, at ``layer`` only. The first reading of a model
    builds every layer's reference keys and values in one pass over the vocabulary (one layer alone costs the same
    pass), so that picking another layer reads them from probe's cache."""
    from probe.readings.prefix import prefix_layers

    prefix = _checked(run.prefix(step, model), model, layer)
    return prefix_layers(prefix, model, k=k, layers=[layer])


def drift_layer(run: PrefixRun, step: int, model: LoadedModel, *, layer: int) -> PrefixDrift:
    """How ``run``'s prefix moved at ``layer`` over its checkpoints up to ``step``."""
    from probe.readings.prefix_drift import prefix_drift

    steps = [s for s in run.steps if s <= step] or run.steps[:1]
    found = {s: run.prefix(s, model) for s in steps}
    _checked(found[steps[0]], model, layer)
    return prefix_drift(found, model, layers=[layer])


def layer_paths(
    run: PrefixRun, model: LoadedModel, vmap: VocabMap, index: VocabIndex, *, layer: int, part: Part, k: int = 3
) -> pd.DataFrame:
    """Every checkpoint of ``run`` at ``layer`` placed in that layer's ``part`` map (:func:`probe.readings.prefix_map
    .prefix_map`), as rows of :func:`probe.dashboard.views.trajectories`'s table (the prefix's kind as its init)."""
    import numpy as np

    from probe.dashboard.views import placed_rows
    from probe.readings.prefix import check_prefix

    steps = run.steps
    found = [run.prefix(step, model) for step in steps]  # each checkpoint read once
    check_prefix(found[0], model, [layer])  # another model's prefix or a layer it lacks: one line (the map built it)
    stacked = np.concatenate([prefix.vectors(layer, part) for prefix in found])
    n = run.length
    return pd.DataFrame(
        {
            "run": run.name,
            "init": run.kind,
            "step": np.repeat(steps, n),
            "position": np.tile(np.arange(n), len(steps)),
            **placed_rows(vmap, stacked, index, model.vocabulary.display, k),
        }
    )


def layer_map(
    runs: list[PrefixRun], model: LoadedModel, *, layer: int, part: Part, method: str
) -> tuple[VocabMap, pd.DataFrame]:
    """The map of ``layer``'s ``part`` space (UMAP or PCA) and every checkpoint of ``runs`` placed in it; each run
    is checked against ``model`` first, and every layer's reference is built in the one pass the first costs."""
    from probe.readings.prefix_map import prefix_map
    from probe.readings.projection import MapConfig

    for run in runs:
        _checked(run.prefix(run.steps[-1], model), model, layer)
    vmap, index = prefix_map(model, layer, part, MapConfig(method="pca" if method == "pca" else "umap"))
    tables = [layer_paths(run, model, vmap, index, layer=layer, part=part) for run in runs]
    return vmap, pd.concat(tables, ignore_index=True)


def _checked(prefix: PrefixPrompt, model: LoadedModel, layer: int) -> PrefixPrompt:
    """``prefix``, once it is known to be ``model``'s and to have ``layer``, with every layer's reference built."""
    from probe.readings.prefix import build_references, check_prefix

    layers = check_prefix(prefix, model, None)  # another model's prefix: one line (errors.md 140)
    check_layer(layer, len(layers))
    build_references(model, layers)
    return prefix


def layer_caption(reading: PrefixLayerReading) -> str:
    """The layer's prefix beside its control, in a line."""
    s, c, itself = reading.summary, reading.control, shown(reading.control_found_itself, ".0%")
    return (
        f"{reading.part}s at layer {reading.layer}: top-1 cosine {s.mean_top1_cosine:.3f}, "
        f"{s.on_manifold_share:.0%} on the manifold · control (real tokens' {reading.part}s in text): "
        f"{c.mean_top1_cosine:.3f}, {c.on_manifold_share:.0%}, found itself {itself}"
    )


def drift_table(drift: PrefixDrift) -> pd.DataFrame:
    """One row per step and part (key, value) at the layer read."""
    return drift.to_dataframe()
