"""Data preparation for the dashboard: tidy tables the pages show, computed from runs, reports and maps.

The pages only lay these out; every number they show is computed here or below (and tested here). The
readings themselves (neighbours, the on-manifold flag) come from :mod:`probe.readings.measures`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from probe.core.io import cache_file, escapes
from probe.core.names import HARD_PROMPT
from probe.formats.discovery import find_runs
from probe.formats.explain_record import ExplainRecord, explain_path, measured_steps, read_explain
from probe.formats.run import Run
from probe.readings.measures import neighbours
from probe.readings.reports import NearestTokenReport, PositionReading, nearest_tokens
from probe.tasks.forms import describe_form

if TYPE_CHECKING:
    from probe.core.index import VocabIndex
    from probe.core.models import LoadedModel
    from probe.core.softprompt import SoftPrompt
    from probe.readings.prefix_report import PrefixLayerReading
    from probe.readings.projection import VocabMap

logger = logging.getLogger(__name__)

TRAJECTORY_COLUMNS = ["run", "init", "step", "position", "x", "y", "neighbours", "top1_cos", "on_manifold"]
COORDS_FORMAT = 1


def readable_runs(folder: str | os.PathLike[str]) -> tuple[list[Run], list[str]]:
    """The runs under ``folder`` with a snapshot, and one line per run folder left out: unreadable, or holding a
    link that leads outside ``folder`` (the dashboard reads server files only inside it)."""
    skipped: list[str] = []
    kept = []
    for run in find_runs(folder, skipped=skipped):
        outside = escapes(run.path, Path(folder))
        if outside:
            skipped.append(f"{run.name}: {outside[0].name} is a link that leads outside the runs folder")
        elif run.steps:
            kept.append(run)
    return kept, skipped


def snapshot_at(run: Run, step: int) -> int:
    """The run's last snapshot step at or before ``step`` (its first if none)."""
    if not run.steps:
        raise ValueError(f"run '{run.path}' has no snapshots yet")
    return step_at(run.steps, step)


def step_at(steps: list[int], step: int) -> int:
    """The last of ``steps`` at or before ``step`` (the first if none)."""
    earlier = [s for s in steps if s <= step]
    return earlier[-1] if earlier else steps[0]


def position_table(report: NearestTokenReport) -> pd.DataFrame:
    """One row per position: its neighbours as text and its distance measures (for the dashboard table)."""
    return positions_table(report.positions)


def positions_table(positions: list[PositionReading]) -> pd.DataFrame:
    """:func:`position_table` of report rows (an input-space report's, or a prefix layer's keys or values)."""
    rows = []
    for p in positions:
        rows.append(
            {
                "position": p.position,
                "neighbours": ", ".join(f"{n.token} ({n.cosine:.2f})" for n in p.neighbours),
                "top1": p.neighbours[0].token,
                "top1_cos": p.top1_cosine,
                "margin": p.margin,
                "norm_x_vocab": p.norm_ratio,
                "manifold_pct": p.manifold_percentile,
                "on_manifold": p.on_manifold,
                "labels": ", ".join(f"{h.label}@{h.rank}" for h in p.label_hits),
                "repeats_at": ", ".join(map(str, p.repeats_at)),
            }
        )
    return pd.DataFrame(rows)


def search_positions(report: NearestTokenReport | PrefixLayerReading, query: str) -> list[int]:
    """Positions whose top-k holds a token containing ``query`` (case-insensitive, markers ignored)."""
    q = query.strip().lower().lstrip("#␣")
    if not q:
        return [p.position for p in report.positions]
    found = []
    for p in report.positions:
        if any(q in n.token.lower().lstrip("#␣") for n in p.neighbours):
            found.append(p.position)
    return found


def filtered_table(report: NearestTokenReport | PrefixLayerReading, query: str) -> pd.DataFrame:
    """:func:`position_table` (of a report, or of a prefix layer's keys or values), keeping only the positions that
    :func:`search_positions` finds for ``query``."""
    table = positions_table(report.positions)
    return table[table["position"].isin(search_positions(report, query))] if query else table


def run_report(run: Run, step: int, model: LoadedModel, index: VocabIndex, k: int) -> NearestTokenReport:
    """The nearest-token report of a run's snapshot at (or just before) ``step``, labels marked."""
    prompt = run.snapshot(snapshot_at(run, step))
    return nearest_tokens(prompt, model, k=k, labels=run.labels or None, index=index)


def prompt_report(prompt: SoftPrompt, model: LoadedModel, index: VocabIndex, k: int) -> NearestTokenReport:
    """The nearest-token report of a loaded prompt file or adapter."""
    return nearest_tokens(prompt, model, k=k, index=index)


def prompt_title(prompt: SoftPrompt) -> str:
    """A loaded prompt's heading: where it was read, and which half of a seq2seq adapter or which task of a
    multitask prompt (one prompt per task) it is."""
    parts = ([f"{prompt.role} prompt"] if prompt.role else []) + (
        [f"task {prompt.metadata['task_id']}"] if "task_id" in prompt.metadata else []
    )
    return prompt.source + (f" ({', '.join(parts)})" if parts else "")


def map_id(vmap: VocabMap) -> str:
    """A short name of a fitted map, for cache keys (its cache key and the fit's duration)."""
    return f"{vmap.key}-{vmap.fit_seconds}"


def placed_rows(
    vmap: VocabMap, vectors: np.ndarray, index: VocabIndex, display: list[str], k: int, xy: np.ndarray | None = None
) -> dict[str, object]:
    """The columns :func:`trajectories` and :func:`placed_prompts` share: coordinates and the light reading."""
    xy = vmap.transform(vectors) if xy is None else xy
    cos, ids, flags = neighbours(vectors, index, k)
    return {
        "x": xy[:, 0],
        "y": xy[:, 1],
        "neighbours": [", ".join(display[t] for t in row) for row in ids],
        "top1_cos": cos[:, 0],
        "on_manifold": flags,
    }


def trajectories(
    vmap: VocabMap,
    runs: list[Run],
    index: VocabIndex,
    *,
    k: int = 3,
    display: list[str],
    cache_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Every snapshot of every run placed in the map: run, init, step, position, x, y, top-k text, on-manifold.

    Coordinates are cached per (map, run signature) in probe's verified cache (:func:`probe.core.io.cache_file`).
    """
    frames = []
    for run in runs:
        if not run.steps:
            continue
        vectors = [run.snapshot(s).vectors for s in run.steps]
        stacked = np.concatenate(vectors)
        p = vectors[0].shape[0]
        xy = _placed(vmap, vmap.key, run.signature, stacked, cache_dir)
        frames.append(
            pd.DataFrame(
                {
                    "run": run.name,
                    "init": run.manifest.init,
                    "step": np.repeat(run.steps, p),
                    "position": np.tile(np.arange(p), len(run.steps)),
                    **placed_rows(vmap, stacked, index, display, k, xy),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TRAJECTORY_COLUMNS)


def _placed(
    vmap: VocabMap, map_name: str, run_signature: str, vectors: np.ndarray, cache_dir: str | os.PathLike[str] | None
) -> np.ndarray:
    """float32 [n, 2]: ``vectors`` placed in the map, from the verified cache when this run was placed before."""
    key = {"format": COORDS_FORMAT, "map": map_name, "run": run_signature, "rows": len(vectors)}
    entry = cache_file("coords", key, cache_dir)
    found = entry.read(check=lambda a: a["xy"].shape == (len(vectors), 2))
    if found is not None:
        return found["xy"]
    xy = np.ascontiguousarray(vmap.transform(vectors), dtype=np.float32)
    entry.write({"xy": xy})
    return xy


def placed_prompts(
    vmap: VocabMap,
    prompts: dict[str, list[SoftPrompt]],
    index: VocabIndex,
    *,
    display: list[str],
    step: int,
    k: int = 3,
) -> pd.DataFrame:
    """Loaded or uploaded prompts as rows of :func:`trajectories`'s table, shown at ``step`` (they have no steps)."""
    frames = []
    for name, found in prompts.items():
        for prompt in found:
            if prompt.dim != index.dim:  # another model's prompt has no place in this map
                continue
            frames.append(
                pd.DataFrame(
                    {
                        "run": name + prompt_title(prompt).removeprefix(prompt.source),
                        "init": "uploaded",
                        "step": step,
                        "position": np.arange(prompt.length),
                        **placed_rows(vmap, prompt.vectors, index, display, k),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TRAJECTORY_COLUMNS)


def map_tokens(vmap: VocabMap, display: list[str]) -> pd.DataFrame:
    """The vocabulary cloud: token id, text, x, y."""
    return pd.DataFrame(
        {
            "token_id": vmap.token_ids,
            "token": [display[t] for t in vmap.token_ids],
            "x": vmap.coords[:, 0],
            "y": vmap.coords[:, 1],
        }
    )


def neighbour_ids(runs: list[Run], index: VocabIndex, k: int = 5) -> np.ndarray:
    """Top-k token ids of every run's first and latest snapshot (extra tokens for the map sample)."""
    ids = []
    for run in runs:
        for step in {run.steps[0], run.steps[-1]} if run.steps else ():
            ids.append(index.search(run.snapshot(step).vectors, k)[1].ravel())
    return np.unique(np.concatenate(ids)) if ids else np.array([], dtype=np.int64)


def landmarks(
    tokens: pd.DataFrame, order: np.ndarray, *, labels: list[str] | None = None, cells: int = 18
) -> pd.DataFrame:
    """Words to write on the map: the most frequent whole word in each occupied cell of a ``cells`` x ``cells``
    grid (so dense regions are named), plus every class label present (``is_label``).

    Args:
        tokens: the map's vocabulary (token_id, token, x, y), from :func:`map_tokens`.
        order: token ids from most to least frequent (:func:`probe.core.tokens.frequency_ranks`).
        labels: class labels to mark.
        cells: grid size; at most ``cells ** 2`` landmarks besides the labels.

    Returns:
        token, x, y, is_label.
    """
    if tokens.empty:
        return pd.DataFrame(columns=["token", "x", "y", "is_label"])
    rank = pd.Series(np.arange(len(order)), index=order)
    table = tokens.assign(rank=tokens["token_id"].map(rank))
    words = table[table["rank"].notna() & table["token"].str.fullmatch(r"[A-Za-z]{3,}")]

    def span(v: pd.Series) -> pd.Series:
        return (v - v.min()) / max(float(v.max() - v.min()), 1e-9)

    cell = np.minimum((span(table["x"]) * cells).astype(int), cells - 1) * cells + np.minimum(
        (span(table["y"]) * cells).astype(int), cells - 1
    )
    words = words.assign(cell=cell[words.index])
    picked = words.sort_values("rank").groupby("cell").head(1)
    wanted = {label.lower() for label in labels or []}
    marked = table[table["token"].str.lower().isin(wanted)]
    out = pd.concat([picked.assign(is_label=False), marked.assign(is_label=True)], ignore_index=True)
    out = out.sort_values("is_label").drop_duplicates("token", keep="last")
    return out[["token", "x", "y", "is_label"]].reset_index(drop=True)


def init_columns(runs: list[Run]) -> dict[str, list[Run]]:
    """The runs grouped for a side-by-side view: one column per initialisation, runs that differ by seed together."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(f"{run.manifest.init} · p={run.manifest.length}", []).append(run)
    return dict(sorted(groups.items()))


def travel_by_step(drift: pd.DataFrame) -> pd.DataFrame:
    """Mean cosine to the initial vector per step, over positions then across runs (seeds): mean, low, high."""
    if drift.empty:
        return pd.DataFrame(columns=["step", "mean", "low", "high", "runs"])
    per_run = drift.groupby(["run", "step"], as_index=False)["cos_to_init"].mean()
    return per_run.groupby("step")["cos_to_init"].agg(mean="mean", low="min", high="max", runs="count").reset_index()


def up_to(drifts: dict[str, pd.DataFrame], step: int | None, *, runs: list[Run] | None = None) -> pd.DataFrame:
    """The drift tables of ``runs`` (default all) in one, up to ``step`` (all steps when None)."""
    from probe.readings.drift import DRIFT_COLUMNS

    names = list(drifts) if runs is None else [r.name for r in runs]
    frames = [drifts[n] for n in names if n in drifts]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", *DRIFT_COLUMNS])
    return table if step is None else table[table["step"] <= step]


def joined(paths: pd.DataFrame, placed: pd.DataFrame) -> pd.DataFrame:
    """Runs' trajectories and loaded prompts (:func:`placed_prompts`) in one table."""
    return pd.concat([paths, placed], ignore_index=True) if not placed.empty else paths


def of_runs(paths: pd.DataFrame, runs: list[Run]) -> pd.DataFrame:
    """The rows of :func:`trajectories`'s table that belong to ``runs``."""
    return paths[paths["run"].isin([r.name for r in runs])]


def shared_range(travels: list[pd.DataFrame], *, floor: float = 0.9) -> tuple[float, float]:
    """One y-axis for every travel curve: from just below the lowest cosine (at most ``floor``) to 1."""
    low = min([float(t["low"].min()) for t in travels if not t.empty] + [floor])
    return (max(-1.0, low - 0.02), 1.005)


def accuracy_spread(runs: list[Run]) -> pd.DataFrame:
    """Soft, discretised and zero-shot test accuracy across runs (seeds): mean and standard deviation."""
    rows = []
    for run in runs:
        for name, value in run.accuracies().items():
            if name != HARD_PROMPT:
                rows.append({"measure": name, "accuracy": value})
    if not rows:
        return pd.DataFrame(columns=["measure", "mean", "sd"])
    table = pd.DataFrame(rows).groupby("measure", sort=False)["accuracy"].agg(mean="mean", sd="std")
    return table.fillna(0.0).reset_index()


def explain_result(run: Run, step: int | None = None) -> ExplainRecord | None:
    """The record ``probe explain`` saved in a run folder: that of the latest measured snapshot at or before
    ``step`` (explain/step-N.json), else the latest (explain.json); None when it has not run there or the
    file is not a record (a warning names it)."""
    steps = measured_steps(run.path)
    if step is not None and steps:
        earlier = [s for s in steps if s <= step]
        path = explain_path(run.path, earlier[-1] if earlier else steps[0])
    else:
        path = explain_path(run.path)
    if not path.is_file():
        return None
    try:
        return read_explain(path)
    except (OSError, ValueError) as e:
        logger.warning("skipping %s: %s", path, e)
        return None


def measured_under(forms: dict[str, str | None], what: str = "Measured") -> str:
    """The objective each figure measured, in a line: ``{run: its task form}`` grouped by form."""
    groups: dict[str | None, list[str]] = {}
    for name, form in forms.items():
        groups.setdefault(form, []).append(name)
    if len(groups) == 1:
        return f"{what} under {describe_form(next(iter(groups)))}."
    return f"{what} under " + "; ".join(f"{describe_form(f)} for {', '.join(n)}" for f, n in groups.items()) + "."


def explain_table(record: ExplainRecord) -> pd.DataFrame:
    """One row per position: nearest token, importance rank, the three drops, and where the lens reading holds."""
    holds = [] if record.lens is None else record.lens.holds_until
    rows = []
    for p in record.importance.positions:
        rows.append(
            {
                "position": p.position,
                "nearest token": p.nearest_token,
                "rank": p.rank,
                "removed drop": p.removed_drop,
                "nearest-token drop (faithfulness)": p.nearest_drop,
                "mean-vocab drop": p.mean_drop,
                "lens holds until layer": holds[p.position] if p.position < len(holds) else None,
            }
        )
    return pd.DataFrame(rows)


def lens_frame(record: ExplainRecord, *, logit: bool = False) -> pd.DataFrame:
    """The layer lens as a tidy table (position, layer, token, cosine); with ``logit``, the logit lens's token
    in the ``token`` column (causal LMs; empty otherwise)."""
    if record.lens is None:
        raise ValueError(f"the explain record of {record.source!r} has no layer lens (a prefix's: none is read)")
    table = record.lens.to_dataframe()
    if not logit:
        return table
    table = table[table["logit_token"].notna()]
    return table.assign(token=table["logit_token"])
