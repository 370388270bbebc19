"""Data preparation for the dashboard: tidy tables the views show, computed from runs, reports and maps.

``app.py`` only lays these out; every number it shows is computed here (and tested here).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from probe.cache import read_cache, write_cache
from probe.index import VocabIndex
from probe.reports import NearestTokenReport, nearest_tokens
from probe.runs import EXPLAIN, EXPLAIN_STEPS, Run
from probe.util import cache_root

if TYPE_CHECKING:
    from probe.models import LoadedModel
    from probe.projection import VocabMap
    from probe.prompts import SoftPrompt

logger = logging.getLogger(__name__)


def snapshot_at(run: Run, step: int) -> int:
    """The run's last snapshot step at or before ``step`` (its first if none)."""
    steps = run.steps
    if not steps:
        raise ValueError(f"run '{run.path}' has no snapshots yet")
    earlier = [s for s in steps if s <= step]
    return earlier[-1] if earlier else steps[0]


def position_table(report: NearestTokenReport) -> pd.DataFrame:
    """One row per position: its neighbours as text and its distance measures (for the dashboard table)."""
    rows = []
    for p in report.positions:
        rows.append(
            {
                "position": p.position,
                "neighbours": ", ".join(f"{n.token} ({n.cosine:.2f})" for n in p.neighbors),
                "top1": p.neighbors[0].token,
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


def search_positions(report: NearestTokenReport, query: str) -> list[int]:
    """Positions whose top-k holds a token containing ``query`` (case-insensitive, markers ignored)."""
    q = query.strip().lower().lstrip("#␣")
    if not q:
        return [p.position for p in report.positions]
    found = []
    for p in report.positions:
        if any(q in n.token.lower().lstrip("#␣") for n in p.neighbors):
            found.append(p.position)
    return found


def run_report(run: Run, step: int, model: LoadedModel, index: VocabIndex, k: int) -> NearestTokenReport:
    """The nearest-token report of a run's snapshot at (or just before) ``step``, labels marked."""
    prompt = run.snapshot(snapshot_at(run, step))
    return nearest_tokens(prompt, model, k=k, labels=run.labels or None, index=index)


def prompt_report(prompt: SoftPrompt, model: LoadedModel, index: VocabIndex, k: int) -> NearestTokenReport:
    """The nearest-token report of a loaded prompt file or adapter."""
    return nearest_tokens(prompt, model, k=k, index=index)


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

    Coordinates are cached per (map, run signature) in probe's verified cache (:mod:`probe.cache`).
    """
    from probe.measures import OFF_MANIFOLD_PERCENTILE
    from probe.projection import map_key

    frames = []
    for run in runs:
        if not run.steps:
            continue
        vectors = [run.snapshot(s).vectors for s in run.steps]
        stacked = np.concatenate(vectors)
        p = vectors[0].shape[0]
        xy = _placed(vmap, map_key(vmap.fingerprint, vmap.config, vmap.token_ids), run.signature, stacked, cache_dir)
        cos, ids = index.search(stacked, k)
        pct = index.manifold_percentile(cos[:, 0])
        frames.append(
            pd.DataFrame(
                {
                    "run": run.name,
                    "init": str(run.manifest.get("init")),
                    "step": np.repeat(run.steps, p),
                    "position": np.tile(np.arange(p), len(run.steps)),
                    "x": xy[:, 0],
                    "y": xy[:, 1],
                    "neighbours": [", ".join(display[t] for t in row) for row in ids],
                    "top1_cos": cos[:, 0],
                    "on_manifold": pct >= OFF_MANIFOLD_PERCENTILE,
                }
            )
        )
    columns = ["run", "init", "step", "position", "x", "y", "neighbours", "top1_cos", "on_manifold"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


COORDS_FORMAT = 1


def _placed(
    vmap: VocabMap, map_id: str, run_signature: str, vectors: np.ndarray, cache_dir: str | os.PathLike[str] | None
) -> np.ndarray:
    """float32 [n, 2]: ``vectors`` placed in the map, from the verified cache when this run was placed before."""
    folder = (Path(cache_dir) if cache_dir is not None else cache_root()) / "coords"
    expected = {"format": COORDS_FORMAT, "map": map_id, "run": run_signature, "rows": len(vectors)}
    name = hashlib.sha256(json.dumps(expected, sort_keys=True).encode()).hexdigest()[:32]
    meta_path, arrays_path = folder / f"{name}.json", folder / f"{name}.safetensors"
    found = read_cache(meta_path, arrays_path, expected)
    if found is not None and found[1]["xy"].shape == (len(vectors), 2):
        return found[1]["xy"]
    xy = np.ascontiguousarray(vmap.transform(vectors), dtype=np.float32)
    try:
        write_cache(meta_path, arrays_path, {"xy": xy}, expected)
    except OSError as e:
        logger.warning("could not cache map coordinates: %s", e)
    return xy


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


def findings_report(folder: str | os.PathLike[str]) -> str | None:
    """The latest ``probe replicate`` report (markdown) in ``folder``, or None if there is none."""
    from probe.replicate import REPORT_MD

    path = Path(folder) / REPORT_MD
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8", errors="replace")


@dataclass
class FindingsReport:
    """One ``probe replicate`` report found for the Findings tab."""

    folder: Path
    label: str  # data set and task form, e.g. "ag_news · cosine"
    markdown: str
    data: dict[str, Any]  # report.json (empty for a report written before it existed)


def findings_reports(folder: str | os.PathLike[str]) -> list[FindingsReport]:
    """Every replicate report in ``folder`` and in its direct subfolders (one per data set and task form, say),
    in folder order. Unreadable JSON is skipped: the markdown alone is still shown."""
    from probe.replicate import REPORT_JSON, REPORT_MD

    root = Path(folder)
    if not root.is_dir():
        return []
    found: list[FindingsReport] = []
    for place in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        md = place / REPORT_MD
        if not md.is_file():
            continue
        data: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((place / REPORT_JSON).read_text(encoding="utf-8"))
        context = data.get("context", {}) if isinstance(data, dict) else {}
        name = Path(str(context.get("data", ""))).stem or place.name
        task = ", ".join(context.get("task", [])) if isinstance(context.get("task"), list) else ""
        steps = context.get("steps") if isinstance(context.get("steps"), list) else []
        label = " · ".join([name, *([task] if task else []), *([f"{steps[0]} steps"] if len(steps) == 1 else [])])
        if any(r.label == label for r in found):
            label = f"{label} ({place.name})"
        found.append(FindingsReport(place, label, md.read_text(encoding="utf-8", errors="replace"), data))
    return found


def findings_side_by_side(reports: list[FindingsReport]) -> pd.DataFrame:
    """One row per finding, one column per report: the verdict, the estimate and its interval, the init control."""

    def cell(f: dict[str, Any]) -> str:
        estimate, interval = f.get("estimate"), f.get("interval") or [None, None]
        if not isinstance(estimate, int | float) or None in interval:
            return str(f.get("verdict", f.get("holds", "")))
        pct = f.get("number") in (2, 3, 4, 5)
        show = (lambda x: f"{x:.0%}") if pct else (lambda x: f"{x:+.3f}" if f.get("number") == 6 else f"{x:.3f}")
        at_init = f.get("init_control")
        tail = f"; at init {show(at_init)}" if isinstance(at_init, int | float) else ""
        return f"{f.get('verdict')}: {show(estimate)} [{show(interval[0])}, {show(interval[1])}]{tail}"

    rows: dict[str, dict[str, str]] = {}
    for report in reports:
        for f in report.data.get("findings", []):
            rows.setdefault(f"{f.get('number')}. {f.get('name')}", {})[report.label] = cell(f)
        travel = report.data.get("context", {}).get("travel", {})
        if travel:
            rows.setdefault("cos to init (1 = did not move)", {})[report.label] = ", ".join(
                f"{init} {cos:.2f}" for init, cos in travel.items()
            )
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=[r.label for r in reports])
    table.index.name = "finding"
    return table.fillna("").reset_index()


def explain_result(run: Run, step: int | None = None) -> dict | None:
    """The readings ``probe explain`` saved in a run folder: those of the latest measured snapshot at or before
    ``step`` (explain/step-N.json), else the latest (explain.json); None when it has not run there."""
    measured = sorted((run.path / EXPLAIN_STEPS).glob("step-*.json"))
    if step is not None and measured:
        earlier = [p for p in measured if int(p.stem.split("-")[1]) <= step]
        path = earlier[-1] if earlier else measured[0]
    else:
        path = run.path / EXPLAIN
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def explain_table(result: dict) -> pd.DataFrame:
    """One row per position: nearest token, importance rank, the three drops, and where the lens reading holds."""
    holds = result.get("lens_holds_until") or []
    rows = []
    for p in result["importance"]:
        rows.append(
            {
                "position": p["position"],
                "nearest token": p["nearest_token"],
                "rank": p["rank"],
                "removed drop": p["removed_drop"],
                "nearest-token drop (faithfulness)": p["nearest_drop"],
                "mean-vocab drop": p["mean_drop"],
                "lens holds until layer": holds[p["position"]] if p["position"] < len(holds) else None,
            }
        )
    return pd.DataFrame(rows)


def lens_frame(result: dict) -> pd.DataFrame:
    """The layer lens as a tidy table: position, layer, token, cosine."""
    return pd.DataFrame(result["layer_lens"])


MAX_UPLOAD_MB = 50
"""The largest prompt file or zipped adapter the dashboard takes (prompts are small; this keeps a zip bomb out)."""
UPLOAD_SUFFIXES = (".safetensors", ".npy", ".pt", ".pth", ".bin", ".zip")
_MAX_ZIP_MEMBERS = 100


def read_upload(name: str, data: bytes, *, max_mb: int = MAX_UPLOAD_MB) -> list[SoftPrompt]:
    """The prompts in an uploaded file: a tensor file, or a zipped PEFT adapter folder.

    The bytes are written only inside a temporary folder, which is removed once the prompts are read. The
    loaders are the CLI's own, so pickled code is refused the same way.

    Raises:
        ValueError: too large, an unknown kind of file, a zip with unsafe paths or no single adapter, or a file
            the loaders refuse (pickled objects, wrong shapes, ...).
    """
    import tempfile
    from dataclasses import replace

    from probe.prompts import load_prompts

    base = Path(name).name or "upload"
    if len(data) > max_mb * 2**20:
        raise ValueError(f"upload '{base}' is {len(data) / 2**20:.1f} MB; the limit is {max_mb} MB")
    suffix = Path(base).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise ValueError(f"upload '{base}' has suffix '{suffix}'; expected one of {', '.join(UPLOAD_SUFFIXES)}")
    with tempfile.TemporaryDirectory(prefix="probe-upload-") as tmp:
        if suffix == ".zip":
            target = _adapter_in(_unzip(data, Path(tmp) / "unzipped", max_mb), base)
        else:
            target = Path(tmp) / f"upload{suffix}"
            target.write_bytes(data)
        try:
            prompts = load_prompts(target)
        except (ValueError, TypeError, FileNotFoundError) as e:  # name the upload, not the temporary folder
            raise ValueError(str(e).replace(str(target), base).replace(tmp, base)) from e
    return [replace(p, source=f"upload: {base}") for p in prompts]


def _unzip(data: bytes, folder: Path, max_mb: int) -> Path:
    import io
    import zipfile
    from pathlib import PurePosixPath

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise ValueError(f"the upload is not a readable zip file ({e})") from e
    with archive:
        members = archive.infolist()
        if len(members) > _MAX_ZIP_MEMBERS:
            raise ValueError(f"the zip holds {len(members)} files; a PEFT adapter has a handful")
        if sum(m.file_size for m in members) > max_mb * 2**20:
            raise ValueError(f"the zip unpacks to more than {max_mb} MB; the limit is {max_mb} MB")
        for member in members:
            parts = PurePosixPath(member.filename).parts
            if PurePosixPath(member.filename).is_absolute() or ".." in parts:
                raise ValueError(f"the zip holds an unsafe path '{member.filename}'; it was not unpacked")
            if member.is_dir():
                continue
            target = folder.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
    return folder


def _adapter_in(folder: Path, name: str) -> Path:
    from probe.prompts import ADAPTER_CONFIG

    found = sorted({p.parent for p in folder.rglob(ADAPTER_CONFIG)})
    if len(found) != 1:
        raise ValueError(
            f"'{name}' holds {len(found)} PEFT adapter folders (with {ADAPTER_CONFIG}); zip exactly one adapter folder"
        )
    return found[0]


def under_folder(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """``path`` resolved, if it lies inside ``folder``: the dashboard reads server files only under the runs folder.

    Raises:
        ValueError: it lies outside.
        FileNotFoundError: it does not exist.
    """
    resolved, root = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    if not resolved.is_relative_to(root):
        raise ValueError(
            f"'{path}' is outside the runs folder '{folder}'; the dashboard reads server files only there. "
            "Upload the file instead"
        )
    if not resolved.exists():
        raise FileNotFoundError(f"'{path}' does not exist")
    return resolved


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
    from probe.measures import OFF_MANIFOLD_PERCENTILE

    frames = []
    for name, found in prompts.items():
        for prompt in found:
            if prompt.dim != index.dim:  # another model's prompt has no place in this map
                continue
            xy = vmap.transform(prompt.vectors)
            cos, ids = index.search(prompt.vectors, k)
            frames.append(
                pd.DataFrame(
                    {
                        "run": f"{name}" + (f" ({prompt.role})" if prompt.role else ""),
                        "init": "uploaded",
                        "step": step,
                        "position": np.arange(prompt.length),
                        "x": xy[:, 0],
                        "y": xy[:, 1],
                        "neighbours": [", ".join(display[t] for t in row) for row in ids],
                        "top1_cos": cos[:, 0],
                        "on_manifold": index.manifold_percentile(cos[:, 0]) >= OFF_MANIFOLD_PERCENTILE,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def landmarks(
    tokens: pd.DataFrame, order: np.ndarray, *, labels: list[str] | None = None, cells: int = 18
) -> pd.DataFrame:
    """Words to write on the map: the most frequent whole word in each occupied cell of a ``cells`` x ``cells``
    grid (so dense regions are named), plus every class label present (``is_label``).

    Args:
        tokens: the map's vocabulary (token_id, token, x, y), from :func:`map_tokens`.
        order: token ids from most to least frequent (:func:`probe.tokens.frequency_ranks`).
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
    span = lambda v: (v - v.min()) / max(float(v.max() - v.min()), 1e-9)  # noqa: E731
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
        manifest = run.manifest
        key = f"{manifest.get('init')} · p={manifest.get('length')}"
        groups.setdefault(key, []).append(run)
    return dict(sorted(groups.items()))


def travel_by_step(drift: pd.DataFrame) -> pd.DataFrame:
    """Mean cosine to the initial vector per step, over positions then across runs (seeds): mean, low, high."""
    if drift.empty:
        return pd.DataFrame(columns=["step", "mean", "low", "high", "runs"])
    per_run = drift.groupby(["run", "step"], as_index=False)["cos_to_init"].mean()
    return per_run.groupby("step")["cos_to_init"].agg(mean="mean", low="min", high="max", runs="count").reset_index()


def accuracy_spread(runs: list[Run]) -> pd.DataFrame:
    """Soft, discretised and zero-shot test accuracy across runs (seeds): mean and standard deviation."""
    rows = []
    for run in runs:
        for name, value in run.accuracies().items():
            if name != "hard_prompt":
                rows.append({"measure": name, "accuracy": value})
    if not rows:
        return pd.DataFrame(columns=["measure", "mean", "sd"])
    table = pd.DataFrame(rows).groupby("measure", sort=False)["accuracy"].agg(mean="mean", sd="std")
    return table.fillna(0.0).reset_index()
