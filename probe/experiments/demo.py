"""The demo: one prompt per paper initialisation on the default model and the bundled data, then readings.

``probe demo`` trains the three runs into a runs folder (skipping runs already finished with the same
config, resuming interrupted ones) and prints each run's accuracy, a nearest-token report, and a comparison
of the initialisations.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd

from probe.core.index import VocabIndex
from probe.core.io import DEFAULT_RUNS_DIR, default_runs_dir  # noqa: F401 - their old home
from probe.core.models import LoadedModel, load_model
from probe.core.names import DISCRETISED, SOFT, ZERO_SHOT
from probe.core.stats import gain_retained
from probe.formats.discovery import load_run
from probe.formats.run import Run, is_run_folder
from probe.readings.drift import summarize_run
from probe.readings.reports import FAITHFULNESS_CAVEAT, nearest_tokens
from probe.training.config import TrainConfig
from probe.training.inits import PAPER_INITS
from probe.training.trainer import train


def demo_configs(base: TrainConfig | None = None) -> dict[str, TrainConfig]:
    """Run name -> config for the three paper initialisations."""
    base = base or TrainConfig()
    return {init.value: replace(base, init=init.value) for init in PAPER_INITS}


def ensure_runs(
    out: str | os.PathLike[str],
    configs: dict[str, TrainConfig],
    *,
    model: LoadedModel,
    progress: bool = True,
    force: bool = False,
) -> list[Run]:
    """Train each run that is missing; resume interrupted ones; keep finished ones with the same config.

    Raises:
        ValueError: a finished run in the folder has another config (use ``force`` to retrain it).
    """
    runs = []
    for name, config in configs.items():
        path, again = Path(out) / name, False
        if is_run_folder(path):
            run = load_run(path)
            same = config.same_as(run.manifest.config)
            if not same and not force:
                raise ValueError(
                    f"'{path}' holds a run with other settings; pass --force to retrain it, or another --out"
                )
            again = force or not same  # started over by its writer: probe's own files only go, the user's stay
            if not again and run.status == "finished":
                runs.append(run)
                continue
        resume = is_run_folder(path) and not again  # an interrupted run with the same config
        trained = train(config, path, model=model, resume=resume, overwrite=again, progress=progress)
        if trained is not None:  # None on the ranks of a distributed launch that do not write
            runs.append(trained)
    return runs


COMPARISON_COLUMNS = (
    "run",
    "init",
    SOFT,
    DISCRETISED,
    ZERO_SHOT,
    "gain_retained",
    "distance_travelled",
    "cos_final_to_init",
    "init_token_kept_top1",
    "label_in_topk",
    "on_manifold",
    "duplicate_top1",
    "mean_converged_at",
    "mean_coherence",
)


def comparison_table(runs: list[Run], model: LoadedModel, index: VocabIndex, *, k: int = 5) -> pd.DataFrame:
    """One row per run (from :func:`probe.readings.drift.summarize_run`): accuracies, the gain over zero-shot its
    nearest tokens keep ((discretised - zero-shot) / (soft - zero-shot); NaN where soft is not above zero-shot),
    travel, init tokens, labels, on-manifold share."""
    rows = []
    for run in runs:
        s = summarize_run(run, model, index=index, k=k)
        row = s.to_dict()
        rows.append(
            {
                **row,
                "gain_retained": gain_retained(*(row.get(name) for name in (SOFT, DISCRETISED, ZERO_SHOT))),
                "distance_travelled": s.mean_distance_travelled,
                "cos_final_to_init": s.mean_cos_final_to_init,
                "init_token_kept_top1": "unknown"
                if s.init_token_top1 is None
                else f"{s.init_token_top1}/{s.init_token_positions}",
            }
        )
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def demo_text(runs: list[Run], model: LoadedModel, index: VocabIndex, *, k: int = 5, positions: int = 8) -> str:
    """The demo's printed summary (markdown)."""
    parts = [f"# probe demo: {len(runs)} prompts on `{model.name}`", ""]
    table = comparison_table(runs, model, index, k=k)
    parts += [
        "## Initialisations compared",
        "",
        table.to_markdown(index=False, floatfmt=".3f"),
        "",
        f"{SOFT}: the soft prompt on the test split; {DISCRETISED}: each position replaced by its nearest "
        f"token; {ZERO_SHOT}: the frozen model without a prompt.",
        "",
    ]
    for run in runs:
        report = nearest_tokens(run.latest_prompt(), model, k=k, labels=run.labels, index=index)
        parts += [
            f"## {run.name}: first {min(positions, len(report.positions))} positions after "
            f"{run.latest_prompt().step} steps",
            "",
        ]
        for p in report.positions[:positions]:
            words = ", ".join(n.token for n in p.neighbours)
            flag = "" if p.on_manifold else "  (off-manifold)"
            parts.append(f"- {p.position:>2}: {words}  [top-1 cos {p.top1_cosine:.2f}]{flag}")
        parts.append("")
    parts += [f"_{FAITHFULNESS_CAVEAT}_", ""]
    return "\n".join(parts)


def run_demo(
    out: str | os.PathLike[str] | None = None,
    *,
    base: TrainConfig | None = None,
    progress: bool = True,
    force: bool = False,
) -> tuple[list[Run], str]:
    """Train (or reuse) the three demo runs and return them with the printed summary."""
    out = Path(out) if out is not None else default_runs_dir()
    configs = demo_configs(base)
    model = load_model(next(iter(configs.values())).model)
    runs = ensure_runs(out, configs, model=model, progress=progress, force=force)
    index = VocabIndex.for_model(model)
    return runs, demo_text(runs, model, index)
