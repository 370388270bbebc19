"""The subcommands that read prompts and runs or train them: one dataclass each, whose fields are the options
(help in their metadata); ``__post_init__`` checks them and ``run`` does the work through the library.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from probe.cli.dashboard import DEMO_LOG, Dashboard, app_path, train_demo_beside  # noqa: F401 - their old home
from probe.cli.options import (
    Command,
    Format,
    budget_gb_option,
    budget_minutes_option,
    emit,
    labels_option,
    option,
    table_text,
)
from probe.training.config import TrainConfig


@dataclass
class Report(Command):
    """Nearest vocabulary tokens of every position of a soft prompt."""

    name: ClassVar[str] = "report"
    summary: ClassVar[str] = "nearest-token report for a soft prompt"

    prompt: str = option(
        help="PEFT adapter folder, .safetensors, .pt/.pth, .npy, or a probe run folder", positional=True, exists=True
    )
    model: str | None = option(None, "model name or folder (default: the one the prompt records, else 'default')")
    k: int = option(5, "neighbours per position (default 5)", short="-k", positive=True)
    labels: str | None = option(None, "comma-separated class labels to mark in the neighbours")
    format: Format | None = option(None, "output format: md, json or csv (default: --out's suffix, else md)")
    out: str | None = option(None, "write to this file instead of stdout")
    key: str | None = option(None, "tensor name in a file holding several")
    step: int | None = option(None, "for a run: its snapshot at this step (default: the last)")
    role: Literal["encoder", "decoder"] | None = option(None, "which half of a seq2seq adapter")
    task_id: int | None = option(None, "a multitask prompt's task (each task has its own prompt)")
    controls: bool = option(False, "add random-vector and sampled-vocab controls")
    all_tokens: bool = option(
        False, "search every vocabulary row (by default special and [unused] tokens are left out)"
    )
    trust_remote_code: bool = option(False, "allow the model repo's own code")
    layer: int | None = option(None, "a prefix's layer to read (PREFIX_TUNING, CARTRIDGE; default every layer)")
    budget_gb: float | None = budget_gb_option()
    budget_minutes: float | None = budget_minutes_option(" (a prefix's per-layer reading)")

    def run(self) -> int:
        from probe.cli.prefix import is_loose_prefix, report_prefix
        from probe.core.index import TokenFilter, VocabIndex
        from probe.core.models import load_model
        from probe.formats.discovery import load_run
        from probe.formats.prefix import is_prefix_adapter
        from probe.formats.prompts import load_prompt
        from probe.readings.reports import nearest_tokens

        if is_prefix_adapter(self.prompt):
            return report_prefix(self)
        prompt = load_prompt(self.prompt, key=self.key, role=self.role, task_id=self.task_id)
        if self.step is not None:
            if not prompt.metadata.get("run"):
                raise ValueError(f"--step picks a run's snapshot; '{self.prompt}' is a prompt file, not a run")
            run = load_run(self.prompt)
            prompt = (run if self.task_id is None else run.for_task(self.task_id)).snapshot(self.step)
        model = load_model(
            self.model or prompt.base_model or "default", device="cpu", trust_remote_code=self.trust_remote_code
        )
        if is_loose_prefix(self.prompt, prompt.dim, model):
            return report_prefix(self, model)
        if self.layer is not None:
            raise ValueError(f"--layer reads a prefix's layers; '{self.prompt}' is an input-space prompt (one layer)")
        check_index_memory(model, "probe report", self.budget_gb)
        labels = labels_option(self.labels)
        accuracies = None
        if prompt.metadata.get("run"):
            run = load_run(self.prompt)
            labels = labels if labels is not None else (run.labels or None)
            accuracies = run.accuracies() if prompt.step == run.steps[-1] else None  # measured on the last snapshot
        index = None
        if self.all_tokens:
            index = VocabIndex.for_model(model, token_filter=TokenFilter(exclude_special=False, exclude_unused=False))
        report = nearest_tokens(
            prompt, model, k=self.k, labels=labels, controls=self.controls, index=index, accuracies=accuracies
        )
        emit({"md": report.to_markdown, "json": report.to_json, "csv": report.to_csv}[self.format or "md"](), self.out)
        return 0


@dataclass
class Train(Command):
    """Train a soft prompt with the model frozen; snapshots are written as it goes."""

    name: ClassVar[str] = "train"
    summary: ClassVar[str] = "train a soft prompt and write a run folder"

    out: str = option(help="run folder to create (or to resume with --resume)")
    resume: bool = option(
        False, "continue the run in --out from its last snapshot (with a larger --steps alone: train a finished run on)"
    )
    force: bool = option(False, "write the run into a folder that holds other files (probe never deletes them)")
    data_changed_ok: bool = option(False, "resume although the data file changed since the run was trained")
    no_progress: bool = option(False, "hide the progress bar")
    config: TrainConfig = option(default_factory=TrainConfig)  # its fields are options too

    def run(self) -> int:
        from probe.training.trainer import train

        run = train(
            self.config,
            self.out,
            resume=self.resume,
            force=self.force,
            data_changed_ok=self.data_changed_ok,
            progress=not self.no_progress,
        )
        assert run is not None  # the CLI process writes the run
        m = run.manifest

        def show(x: float | None) -> str:
            return "unknown" if x is None else f"{x:.3f}"

        print(
            f"run {run.path}: {len(run.steps)} snapshots, accuracy {show(m.soft_accuracy)} "
            f"(discretised {show(m.discretised_accuracy)}, zero-shot {show(m.zero_shot_accuracy)}; on the "
            f"{m.test_rows} test rows)"
        )
        return 0


@dataclass
class Drift(Command):
    """How each position moved over a run's snapshots."""

    name: ClassVar[str] = "drift"
    summary: ClassVar[str] = "how each position moved over a run's snapshots"

    run_path: str = option(help="a probe run folder", positional=True, metavar="run", exists=True)
    model: str | None = option(None, "override the model recorded in the run")
    k: int = option(5, "top-k for the neighbour overlap (default 5)", short="-k", positive=True)
    summary_only: bool = option(False, "one line per run instead of per step and position", flag="--summary")
    step: int | None = option(None, "the per-step table only up to this step (default: every snapshot)")
    format: Format | None = option(None, "output format: md, json or csv (default: --out's suffix, else md)")
    out: str | None = option(None, "write to this file instead of stdout")
    layer: int | None = option(None, "for prefix checkpoints: the layer to read (default every layer)")
    budget_gb: float | None = budget_gb_option()
    budget_minutes: float | None = budget_minutes_option(" (a prefix's per-layer reading)")
    task_id: int | None = option(None, "for a multitask run: the task whose prompt to read (each has its own)")

    def run(self) -> int:
        import pandas as pd

        from probe.formats.prefix import prefix_steps

        if prefix_steps(self.run_path):
            from probe.cli.prefix import drift_prefix

            return drift_prefix(self)
        if self.layer is not None:
            raise ValueError(f"--layer reads a prefix's layers; '{self.run_path}' holds no prefix checkpoints")

        from probe.core.index import VocabIndex
        from probe.core.models import load_model
        from probe.formats.discovery import load_run
        from probe.readings.drift import drift_table, summarize_run

        run = load_run(self.run_path)
        run = run if self.task_id is None else run.for_task(self.task_id)
        model = load_model(self.model or run.manifest.model or "default", device="cpu")
        check_index_memory(model, "probe drift", self.budget_gb)
        index = VocabIndex.for_model(model)
        steps = None if self.step is None else [s for s in run.steps if s <= self.step]
        if steps is not None and not steps:
            raise ValueError(
                f"run '{self.run_path}' has no snapshot at or before step {self.step}; it starts at {run.steps[:1]}"
            )
        table = drift_table(run, model, index=index, k=self.k, steps=steps)
        if self.summary_only:
            table = pd.DataFrame([summarize_run(run, model, table, index=index, k=self.k).to_dict()])
        emit(table_text(table, self.format or "md"), self.out)
        return 0


@dataclass
class Compare(Command):
    """Compare two prompts of the same model position by position."""

    name: ClassVar[str] = "compare"
    summary: ClassVar[str] = "compare two prompts of the same model position by position"

    a: str = option(help="prompt or run A", positional=True, exists=True)
    b: str = option(help="prompt or run B", positional=True, exists=True)
    model: str | None = option(None, "model name or folder (default: the one prompt A records)")
    k: int = option(5, "neighbours per position (default 5)", short="-k", positive=True)
    matched: bool = option(False, "csv/json: the Hungarian matching instead")
    format: Format | None = option(None, "output format: md, json or csv (default: --out's suffix, else md)")
    out: str | None = option(None, "write to this file instead of stdout")
    task_a: int | None = option(None, "a multitask prompt's task for A (the same adapter twice compares two tasks)")
    task_b: int | None = option(None, "a multitask prompt's task for B")
    role: Literal["encoder", "decoder"] | None = option(None, "which half of seq2seq adapters, for A and B alike")
    budget_gb: float | None = budget_gb_option()

    def run(self) -> int:
        from probe.core.index import VocabIndex
        from probe.core.models import load_model
        from probe.readings.compare import compare_prompts

        a = _load_for_compare(self.a, self.task_a, "--task-a", self.role)
        b = _load_for_compare(self.b, self.task_b, "--task-b", self.role)
        if a.base_model and b.base_model and a.base_model != b.base_model and not self.model:
            raise ValueError(
                f"'{self.a}' was trained on {a.base_model} and '{self.b}' on {b.base_model}; "
                "compare prompts of the same model"
            )
        model = load_model(self.model or a.base_model or "default", device="cpu")
        a.check_dim(model.dim, model.name)
        b.check_dim(model.dim, model.name)
        check_index_memory(model, "probe compare", self.budget_gb)
        result = compare_prompts(a, b, VocabIndex.for_model(model), k=self.k, display=model.vocabulary.display)
        if self.format == "md":
            text = result.to_markdown() + _what_the_readings_keep([self.a, self.b])
        else:
            text = table_text(result.matching if self.matched else result.by_position, self.format or "md")
        emit(text, self.out)
        return 0


def _load_for_compare(path: str, task_id: int | None, option_name: str, role: Any = None) -> Any:
    """``load_prompt`` whose errors name compare's own task option (``--task-a`` / ``--task-b``)."""
    from probe.formats.prompts import load_prompt

    try:
        return load_prompt(path, task_id=task_id, role=role)
    except ValueError as e:
        raise ValueError(str(e).replace("--task-id", option_name)) from None


def check_index_memory(model: Any, what: str, gb: float | None) -> None:
    """Refuse a reading whose vocabulary index would pass the memory budget (``--budget-gb``), before it is built.

    Raises:
        ValueError: the index over the budget, in one line naming ``--budget-gb``.
    """
    from probe.core.budget import check_memory
    from probe.core.index import index_bytes

    check_memory(index_bytes(model.vocab_size, model.dim), f"{what}'s vocabulary index", gb=gb)


def _what_the_readings_keep(targets: list[str]) -> str:
    """For the targets that are runs: soft, nearest-token and zero-shot accuracy as each run recorded them, and
    the share of the soft prompt's gain over zero-shot its nearest tokens keep (``probe explain`` scores them all
    with intervals). Empty when no target is a run."""
    from probe.core.names import DISCRETISED, SOFT, ZERO_SHOT
    from probe.core.stats import gain_retained
    from probe.formats.discovery import load_run
    from probe.formats.run import is_run_folder

    def cell(value: float | None) -> str:
        return "–" if value is None or value != value else f"{value:.3f}"

    rows = []
    for target in targets:
        if is_run_folder(target):
            acc = load_run(target).accuracies()
            gain = gain_retained(*(acc.get(name) for name in (SOFT, DISCRETISED, ZERO_SHOT)))
            measures = [acc.get(SOFT), acc.get(DISCRETISED), acc.get(ZERO_SHOT), gain]
            rows.append(f"| {target} | " + " | ".join(cell(v) for v in measures) + " |")
    if not rows:
        return ""
    head = "\n\n## What each run's nearest tokens keep\n\n| run | soft | nearest tokens | zero-shot | gain retained |\n"
    return head + "|---|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n"


_DEFAULTS = TrainConfig()


@dataclass
class Demo(Command):
    """Train one prompt per paper init on the default model and compare them."""

    name: ClassVar[str] = "demo"
    summary: ClassVar[str] = "train one prompt per paper init on the default model and compare them"

    out: str | None = option(None, "runs folder (default $PROBE_RUNS_DIR or ./probe-runs)")
    steps: int = option(_DEFAULTS.steps, f"training steps (default {_DEFAULTS.steps})", positive=True)
    length: int = option(_DEFAULTS.length, f"prompt positions (default {_DEFAULTS.length})", positive=True)
    seed: int = option(_DEFAULTS.seed, "seed of every run (default 0)")
    data: str = option(_DEFAULTS.data, "bundled set or labelled file (default feelings)")
    force: bool = option(False, "retrain runs whose settings differ")
    no_progress: bool = option(False, "hide the progress bars")

    def run(self) -> int:
        from probe.experiments.demo import run_demo

        base = dataclasses.replace(_DEFAULTS, steps=self.steps, length=self.length, seed=self.seed, data=self.data)
        _, text = run_demo(self.out, base=base, progress=not self.no_progress, force=self.force)
        emit(text, None)
        return 0
