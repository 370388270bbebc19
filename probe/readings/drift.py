"""How a prompt moves during training: measures over a run's ordered snapshots, as tidy tables.

Snapshots are streamed in chunks (``chunk`` snapshots at a time), and every chunk's positions go to the
index in one batched search, so memory stays bounded by the chunk, whatever the number of snapshots.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from probe.core.index import VocabIndex, normalize_rows
from probe.core.models import LoadedModel
from probe.core.names import SOFT
from probe.core.results import Result
from probe.core.tokens import label_token_ids
from probe.formats.run import Run
from probe.readings.measures import OFF_MANIFOLD_PERCENTILE, duplicate_top1, neighbour_coherence, read_positions

__all__ = ["DRIFT_COLUMNS", "RunSummary", "convergence_steps", "drift_frames", "drift_table", "summarize_run"]

DRIFT_COLUMNS = (
    "step",
    "position",
    "cos_to_init",
    "l2_to_init",
    "cos_to_prev",
    "norm",
    "top1_id",
    "top1_token",
    "top1_cos",
    "jaccard_prev",
)


def _cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("pd,pd->p", normalize_rows(a), normalize_rows(b))


def drift_frames(
    snapshots: Iterable[tuple[int, np.ndarray]],
    index: VocabIndex,
    *,
    k: int = 5,
    chunk: int = 64,
    display: list[str] | None = None,
) -> Iterable[pd.DataFrame]:
    """Yield drift rows chunk by chunk for ``(step, vectors [p, d])`` pairs in step order.

    Raises:
        ValueError: steps out of order or prompts of changing shape.
    """
    init = prev = None
    prev_sets: list[set[int]] | None = None
    last_step = -1
    buffer: list[tuple[int, np.ndarray]] = []

    def flush() -> pd.DataFrame:
        nonlocal init, prev, prev_sets
        stacked = np.concatenate([v for _, v in buffer])
        cos, ids = index.search(stacked, k)
        p = buffer[0][1].shape[0]
        rows = []
        for j, (step, v) in enumerate(buffer):
            if init is None or prev is None:
                init = prev = v
            block = slice(j * p, (j + 1) * p)
            sets = [set(r.tolist()) for r in ids[block]]
            jaccard = (
                [len(a & b) / len(a | b) for a, b in zip(sets, prev_sets, strict=True)]
                if prev_sets is not None
                else [1.0] * p
            )
            rows.append(
                pd.DataFrame(
                    {
                        "step": step,
                        "position": np.arange(p),
                        "cos_to_init": _cos_rows(v, init),
                        "l2_to_init": np.linalg.norm(v - init, axis=1),
                        "cos_to_prev": _cos_rows(v, prev),
                        "norm": np.linalg.norm(v, axis=1),
                        "top1_id": ids[block, 0],
                        "top1_token": [display[t] for t in ids[block, 0]] if display else ids[block, 0].astype(str),
                        "top1_cos": cos[block, 0],
                        "jaccard_prev": jaccard,
                    }
                )
            )
            prev, prev_sets = v, sets
        buffer.clear()
        return pd.concat(rows, ignore_index=True)

    shape = None
    for step, vectors in snapshots:
        if step <= last_step:
            raise ValueError(f"snapshot steps must increase; got step {step} after {last_step}")
        if shape is not None and vectors.shape != shape:
            raise ValueError(f"snapshot at step {step} has shape {vectors.shape}, earlier ones {shape}")
        shape, last_step = vectors.shape, step
        buffer.append((step, np.asarray(vectors, np.float32)))
        if len(buffer) >= chunk:
            yield flush()
    if buffer:
        yield flush()


def drift_table(
    run: Run,
    model: LoadedModel,
    *,
    index: VocabIndex | None = None,
    k: int = 5,
    steps: list[int] | None = None,
    chunk: int = 64,
    progress: bool = False,
) -> pd.DataFrame:
    """Per (step, position): cosine and L2 to the initial vector, cosine to the previous snapshot, norm,
    top-1 token and cosine, and Jaccard of the top-k set against the previous snapshot.

    Args:
        run: an opened run (see :func:`probe.load_run`).
        model: the run's model.
        index: the vocabulary index (default: the model's).
        k: neighbourhood size for the Jaccard overlap.
        steps: which snapshots (default all).
        chunk: snapshots per batched search.
        progress: show a progress bar over the snapshots.
    """
    from probe.core.io import expect
    from probe.core.progress import progress_bar

    expect(run, Run, "run", "an opened run (probe.load_run(path))")
    expect(model, LoadedModel, "model", "a loaded model (probe.load_model(...))")
    index = index or VocabIndex.for_model(model)
    if steps is not None and (isinstance(steps, str | int) or not hasattr(steps, "__len__")):
        raise TypeError(f"steps is {steps!r}; expected a list of the run's steps ([0, 50, 100]) or None (each)")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk is {chunk!r}; expected a positive number of snapshots per search")
    chosen = steps if steps is not None else run.steps
    snapshots = progress_bar(
        len(chosen), "drift", enabled=progress, unit="snapshot", iterable=run.iter_snapshots(chosen)
    )
    stream = ((int(p.step or 0), p.vectors) for p in snapshots)
    frames = list(drift_frames(stream, index, k=k, chunk=chunk, display=model.vocabulary.display))
    if not frames:
        return pd.DataFrame(columns=list(DRIFT_COLUMNS))
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "run", run.name)
    return table


def convergence_steps(table: pd.DataFrame) -> pd.Series:
    """Per position, the first step from which the top-1 token stays at its final value."""
    out = {}
    for position, group in table.sort_values("step").groupby("position"):
        tops = group["top1_id"].to_numpy()
        steps = group["step"].to_numpy()
        changed = np.flatnonzero(tops != tops[-1])
        out[position] = int(steps[changed[-1] + 1]) if changed.size else int(steps[0])
    return pd.Series(out, name="converged_at")


@dataclass(frozen=True, repr=False)
class RunSummary(Result):
    """One run in a line: accuracies, how far it moved, init tokens kept, labels near, manifold share.

    The one per-run summary: ``probe drift --summary``, the demo's comparison table and ``probe replicate``
    all read it. The arrays (final and initial top-k, coherence per position) are for readings across runs
    and are left out of :meth:`to_dict`.
    """

    run: str
    init: str
    seed: int | None
    positions: int
    snapshots: int
    soft_accuracy: float | None
    discretised_accuracy: float | None
    zero_shot_accuracy: float | None
    mean_distance_travelled: float
    mean_cos_final_to_init: float
    init_token_top1: int | None
    init_token_topk: int | None
    init_token_positions: int
    label_in_topk: int
    on_manifold: float
    duplicate_top1: int
    mean_coherence: float
    mean_converged_at: float
    final_ids: np.ndarray = field(repr=False, compare=False)  # int64 [p, k] top-k of the final snapshot
    init_ids: np.ndarray = field(repr=False, compare=False)  # int64 [p, k] top-k of the first snapshot
    coherence: np.ndarray = field(repr=False, compare=False)  # float32 [p] of the final snapshot
    init_coherence: np.ndarray = field(repr=False, compare=False)  # float32 [p] of the first snapshot
    cos_to_init: np.ndarray = field(repr=False, compare=False)  # float [p] cosine of each final row to its first
    final_tokens: list[list[str]] = field(default_factory=list, repr=False, compare=False)  # final top-k as text
    init_tokens: list[list[str]] = field(default_factory=list, repr=False, compare=False)  # first top-k as text
    baseline: str = "init"
    """What "to init" is measured from: the run's init (step 0), or, where the folder kept none, its first snapshot,
    named (``first snapshot, step 500``)."""
    note: str = ""
    """Why a figure is blank, in words (the accuracies of a run recorded from another loop, say)."""

    @property
    def length(self) -> int:
        """Prompt positions p."""
        return self.positions

    def to_dict(self) -> dict[str, Any]:
        """The scalar fields as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.compare}

    def headline(self) -> str:
        accuracy = "unknown" if self.soft_accuracy is None else f"{self.soft_accuracy:.3f}"
        return f"{self.run!r}, {self.init}, {self.positions} positions, accuracy {accuracy}"

    def to_dataframe(self) -> pd.DataFrame:
        """One row per position: its top-k tokens at the start and at the end (as text), how far it moved, and how
        tight its final neighbours are."""
        return pd.DataFrame(
            {
                "position": np.arange(self.positions),
                "init_tokens": [", ".join(t) for t in self.init_tokens] or None,
                "final_tokens": [", ".join(t) for t in self.final_tokens] or None,
                "cos_to_init": self.cos_to_init,
                "coherence": self.coherence,
            }
        )

    def to_markdown(self) -> str:
        """The run in a line, then one row per position."""
        values = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in self.to_dict().items())
        return f"**{self.run}**: {values}\n\n" + self.to_dataframe().to_markdown(index=False, floatfmt=".3f")


def summarize_run(
    run: Run,
    model: LoadedModel,
    table: pd.DataFrame | None = None,
    *,
    index: VocabIndex | None = None,
    k: int = 5,
    convergence: bool = True,
) -> RunSummary:
    """Summarise a run from its snapshots and manifest.

    Args:
        run: the run.
        model: its model.
        table: its :func:`drift_table`, when already computed (for the convergence step).
        index: the vocabulary index (default: the model's).
        k: neighbours per position.
        convergence: compute ``mean_converged_at`` (reads every snapshot's neighbours; NaN when False).
    """
    index = index or VocabIndex.for_model(model)
    display = model.vocabulary.display
    first = run.initial_prompt().vectors
    # path length through the snapshots, streamed one at a time
    previous, travelled = first, np.zeros(first.shape[0])
    for prompt in run.iter_snapshots():
        travelled += np.linalg.norm(prompt.vectors - previous, axis=1)
        previous = prompt.vectors
    final = previous
    readings = read_positions(final, index, k)
    final_ids = readings.token_ids
    _, init_ids = index.search(first, k)
    init_tokens = run.manifest.init_details.get("token_ids") or []
    with_tokens = [(i, ids) for i, ids in enumerate(init_tokens) if ids]
    label_ids = set().union(*(label_token_ids(model.tokenizer, label) for label in run.labels))
    if convergence:
        table = table if table is not None else drift_table(run, model, index=index, k=k)
        converged = float(convergence_steps(table).mean())
    else:
        converged = float("nan")
    cos_to_init = _cos_rows(final, first)
    start = run.steps[0] if run.steps else 0
    baseline = "init" if start == 0 else f"first snapshot, step {start} (the init was not kept: 'to init' is from here)"
    soft = run.manifest.soft_accuracy if run.manifest.soft_accuracy is not None else _last_eval(run)
    note = ""
    if soft is None:
        note = "accuracies: not measured by the loop that wrote this run; probe explain RUN --data FILE measures them"
    return RunSummary(
        run=run.name,
        init=run.manifest.init,
        seed=run.manifest.seed,
        positions=int(first.shape[0]),
        snapshots=len(run.steps),
        soft_accuracy=soft,
        discretised_accuracy=run.manifest.discretised_accuracy,
        zero_shot_accuracy=run.manifest.zero_shot_accuracy,
        mean_distance_travelled=float(travelled.mean()),
        mean_cos_final_to_init=float(cos_to_init.mean()),
        # None where the init's tokens are unknown (another loop's run): unknown, not "0 of 0"
        init_token_top1=sum(1 for i, ids in with_tokens if int(final_ids[i, 0]) in ids) if with_tokens else None,
        init_token_topk=sum(1 for i, ids in with_tokens if set(ids) & set(final_ids[i].tolist()))
        if with_tokens
        else None,
        init_token_positions=len(with_tokens),
        label_in_topk=sum(1 for row in final_ids if label_ids & set(row.tolist())),
        on_manifold=float((readings.manifold_percentile >= OFF_MANIFOLD_PERCENTILE).mean()),
        duplicate_top1=sum(1 for d in duplicate_top1(final_ids[:, 0]) if d),
        mean_coherence=float(np.nanmean(readings.coherence)) if np.isfinite(readings.coherence).any() else float("nan"),
        mean_converged_at=converged,
        baseline=baseline,
        note=note,
        final_ids=final_ids,
        init_ids=init_ids,
        coherence=readings.coherence,
        init_coherence=neighbour_coherence(index, init_ids),
        cos_to_init=cos_to_init,
        final_tokens=[[display[int(t)] for t in row] for row in final_ids],
        init_tokens=[[display[int(t)] for t in row] for row in init_ids],
    )


def _last_eval(run: Run) -> float | None:
    """The soft accuracy of the run's last recorded evaluation (what another tool's trainer logged), if any."""
    for record in reversed(run.records()):
        value = record.get(SOFT) if record.get("kind") == "eval" else None
        if isinstance(value, int | float):
            return float(value)
    return None
