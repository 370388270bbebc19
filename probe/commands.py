"""The CLI's subcommands, one dataclass each: fields are the options (help in their metadata), ``__post_init__``
checks them, ``run`` does the work through the library. :mod:`probe.cli` builds the parser from these classes.

Field metadata understood by the parser: ``help``; ``positional``; ``short`` ("-k"); ``aliases`` (old flag
names kept working); ``type`` (a converter for values that are not plain str / int / float); ``positive`` (a
number that must be > 0, checked here in one place); ``nargs``.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from probe.training import TrainConfig
from probe.util import atomic_write_text

Format = Literal["md", "json", "csv"]


def option(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = None, **meta: Any) -> Any:
    """A dataclass field that is also a CLI option (see the module docstring for ``meta``)."""
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


def emit(text: str, out: str | None) -> None:
    """Write command output to ``out`` atomically (saying so on stderr), or to stdout."""
    text = text if text.endswith("\n") else text + "\n"
    if out:
        atomic_write_text(out, text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def table_text(df: Any, fmt: str) -> str:
    """A DataFrame as csv, json records, or a markdown table."""
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", indent=2)
    return df.to_markdown(index=False, floatfmt=".4f")


@dataclass
class Command:
    """Base of every subcommand: checks ``positive`` fields, then the subclass's own rules."""

    name: ClassVar[str]
    summary: ClassVar[str]

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value, flag = getattr(self, f.name), option_flag(f)
            choices = literal_choices(hints[f.name])
            if choices and value is not None and value not in choices:
                raise ValueError(f"{flag} is {value!r}; expected one of {', '.join(map(str, choices))}")
            if not f.metadata.get("positive") or value is None:
                continue
            for v in value if isinstance(value, list | tuple) else [value]:
                if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                    raise ValueError(f"{flag} is {v!r}; expected a positive number")

    def run(self) -> int:
        """Do the work; returns the exit status."""
        raise NotImplementedError


def option_flag(f: dataclasses.Field[Any]) -> str:
    """The option's name on the command line (``--all-tokens`` for ``all_tokens``, or its ``flag``)."""
    if f.metadata.get("positional"):
        return f.metadata.get("metavar", f.name)
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def literal_choices(hint: Any) -> tuple[Any, ...]:
    """The allowed values of a ``Literal[...]`` (or ``Literal[...] | None``) hint; empty for other types."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    for arg in typing.get_args(hint):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return ()


def _labels(text: str | None) -> list[str] | None:
    if text is None:
        return None
    labels = [x.strip() for x in text.split(",")]
    if not all(labels):
        raise ValueError(f"--labels {text!r} has an empty label; give comma-separated names like 'a,b,c'")
    return labels


@dataclass
class Report(Command):
    """Nearest vocabulary tokens of every position of a soft prompt."""

    name: ClassVar[str] = "report"
    summary: ClassVar[str] = "nearest-token report for a soft prompt"

    prompt: str = option(
        help="PEFT adapter folder, .safetensors, .pt/.pth, .npy, or a probe run folder", positional=True
    )
    model: str | None = option(None, "model name or folder (default: the one the prompt records, else 'default')")
    k: int = option(5, "neighbours per position (default 5)", short="-k", positive=True)
    labels: str | None = option(None, "comma-separated class labels to mark in the neighbours")
    format: Format = option("md", "output format: md, json or csv (default md)")
    out: str | None = option(None, "write to this file instead of stdout")
    key: str | None = option(None, "tensor name in a file holding several")
    role: Literal["encoder", "decoder"] | None = option(None, "which half of a seq2seq adapter")
    controls: bool = option(False, "add random-vector and sampled-vocab controls")
    all_tokens: bool = option(
        False, "search every vocabulary row (by default special and [unused] tokens are left out)"
    )
    trust_remote_code: bool = option(False, "allow the model repo's own code")

    def run(self) -> int:
        from probe.index import TokenFilter, VocabIndex
        from probe.models import load_model
        from probe.prompts import load_prompt
        from probe.reports import nearest_tokens
        from probe.runs import load_run

        prompt = load_prompt(self.prompt, key=self.key, role=self.role)
        model = load_model(
            self.model or prompt.base_model or "default", device="cpu", trust_remote_code=self.trust_remote_code
        )
        labels = _labels(self.labels)
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
        emit({"md": report.to_markdown, "json": report.to_json, "csv": report.to_csv}[self.format](), self.out)
        return 0


@dataclass
class Train(Command):
    """Train a soft prompt with the model frozen; snapshots are written as it goes."""

    name: ClassVar[str] = "train"
    summary: ClassVar[str] = "train a soft prompt and write a run folder"

    out: str = option(help="run folder to create (or to resume with --resume)")
    resume: bool = option(False, "continue the run in --out from its last snapshot")
    no_progress: bool = option(False, "hide the progress bar")
    config: TrainConfig = option(default_factory=TrainConfig)  # its fields are options too

    def run(self) -> int:
        from probe.training import train

        run = train(self.config, self.out, resume=self.resume, progress=not self.no_progress)
        assert run is not None  # the CLI process writes the run
        final = run.manifest.get("final", {})
        nan = float("nan")
        print(
            f"run {run.path}: {len(run.steps)} snapshots, accuracy {final.get('accuracy', nan):.3f} "
            f"(discretised {final.get('discrete_accuracy', nan):.3f}, zero-shot "
            f"{run.manifest.get('zero_shot_accuracy', nan):.3f}; on the {run.manifest['data']['test_size']} "
            "test rows)"
        )
        return 0


@dataclass
class Drift(Command):
    """How each position moved over a run's snapshots."""

    name: ClassVar[str] = "drift"
    summary: ClassVar[str] = "how each position moved over a run's snapshots"

    run_path: str = option(help="a probe run folder", positional=True, metavar="run")
    model: str | None = option(None, "override the model recorded in the run")
    k: int = option(5, "top-k for the neighbour overlap (default 5)", short="-k", positive=True)
    summary_only: bool = option(False, "one line per run instead of per step and position", flag="--summary")
    format: Format = option("md", "output format: md, json or csv (default md)")
    out: str | None = option(None, "write to this file instead of stdout")

    def run(self) -> int:
        import pandas as pd

        from probe.drift import drift_table, summarize_run
        from probe.index import VocabIndex
        from probe.models import load_model
        from probe.runs import load_run

        run = load_run(self.run_path)
        model = load_model(self.model or run.manifest.get("model") or "default", device="cpu")
        index = VocabIndex.for_model(model)
        table = drift_table(run, model, index=index, k=self.k)
        if self.summary_only:
            table = pd.DataFrame([summarize_run(run, model, table, index=index, k=self.k).to_dict()])
        emit(table_text(table, self.format), self.out)
        return 0


@dataclass
class Compare(Command):
    """Compare two prompts of the same model position by position."""

    name: ClassVar[str] = "compare"
    summary: ClassVar[str] = "compare two prompts of the same model position by position"

    a: str = option(help="prompt or run A", positional=True)
    b: str = option(help="prompt or run B", positional=True)
    model: str | None = option(None, "model name or folder (default: the one prompt A records)")
    k: int = option(5, "neighbours per position (default 5)", short="-k", positive=True)
    matched: bool = option(False, "csv/json: the Hungarian matching instead")
    format: Format = option("md", "output format: md, json or csv (default md)")
    out: str | None = option(None, "write to this file instead of stdout")

    def run(self) -> int:
        from probe.compare import compare_prompts
        from probe.index import VocabIndex
        from probe.models import load_model
        from probe.prompts import load_prompt

        a, b = load_prompt(self.a), load_prompt(self.b)
        if a.base_model and b.base_model and a.base_model != b.base_model and not self.model:
            raise ValueError(
                f"'{self.a}' was trained on {a.base_model} and '{self.b}' on {b.base_model}; "
                "compare prompts of the same model"
            )
        model = load_model(self.model or a.base_model or "default", device="cpu")
        a.check_dim(model.dim, model.name)
        b.check_dim(model.dim, model.name)
        result = compare_prompts(a, b, VocabIndex.for_model(model), k=self.k, display=model.vocabulary.display)
        if self.format == "md":
            text = result.to_markdown()
        else:
            text = table_text(result.matching if self.matched else result.by_position, self.format)
        emit(text, self.out)
        return 0


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
        from probe.demo import run_demo

        base = dataclasses.replace(_DEFAULTS, steps=self.steps, length=self.length, seed=self.seed, data=self.data)
        _, text = run_demo(self.out, base=base, progress=not self.no_progress, force=self.force)
        emit(text, None)
        return 0


@dataclass
class Dashboard(Command):
    """Serve the Streamlit dashboard; the process becomes the server, so a signal to it stops the server."""

    name: ClassVar[str] = "dashboard"
    summary: ClassVar[str] = "serve the Streamlit dashboard (trains the demo runs if there are none)"

    runs_dir: str | None = option(None, "runs folder (default $PROBE_RUNS_DIR or ./probe-runs)", positional=True)
    host: str = option("127.0.0.1", "address to bind (default localhost only)")
    port: int = option(8501, "port (default 8501)", positive=True)
    no_demo: bool = option(False, "do not train the demo runs when the folder is empty")

    def run(self) -> int:
        import os

        from probe.demo import default_runs_dir, run_demo
        from probe.runs import find_runs

        runs_dir = self.runs_dir or str(default_runs_dir())
        if not self.no_demo and not find_runs(runs_dir):
            print(f"no runs in {runs_dir}: training the demo runs first (about two minutes)", file=sys.stderr)
            run_demo(runs_dir, progress=True)
        command = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            app_path(),
            "--server.address",
            self.host,
            "--server.port",
            str(self.port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--client.toolbarMode",
            "minimal",
            "--",
            "--runs",
            runs_dir,
        ]
        print(f"probe dashboard: http://{self.host}:{self.port}  (runs: {runs_dir}; Ctrl-C to stop)", flush=True)
        sys.stderr.flush()
        # exec, not a child: SIGTERM / SIGINT from a supervisor reach the server itself and stop it
        os.execv(sys.executable, command)
        return 0  # pragma: no cover - exec does not return


def app_path() -> str:
    """Path of the Streamlit page inside the installed package (probe/app.py)."""
    from pathlib import Path

    path = Path(__file__).resolve().parent / "app.py"
    if not path.is_file():
        raise FileNotFoundError(f"the dashboard page {path} is missing from the probe package; reinstall probe")
    return str(path)


@dataclass
class Replicate(Command):
    """Measure the paper's findings on learned prompts (section 7)."""

    name: ClassVar[str] = "replicate"
    summary: ClassVar[str] = "measure the paper's findings on learned prompts (section 7)"

    quick: bool = option(False, "the quick grid: lengths 5 and 20 x 2 seeds x 60 steps, 400 test rows")
    out: str = option("probe-replicate", "folder for runs and the report (default probe-replicate)")
    model: str = option("default", "model name or folder (default: the bundled default)")
    data: str = option("feelings", "bundled set or labelled file (default feelings)")
    seeds: list[int] | None = option(None, "seeds per (init, length)", nargs="+")
    lengths: list[int] | None = option(None, "prompt lengths", nargs="+", positive=True)
    steps: int | None = option(None, "training steps per run", positive=True)
    k: int = option(5, "neighbourhood size (default 5)", short="-k", positive=True)
    task: Literal["cosine", "verbaliser"] = option(
        "cosine", "encoder task form: cosine (sentence vs label names) or verbaliser (output position vs label token)"
    )
    test_size: int | None = option(
        None, "final figures on a stratified subset of this many test rows (default: all; --quick: 400)", positive=True
    )
    measure_only: bool = option(False, "only recompute the report from the saved runs")
    force: bool = option(False, "retrain runs in --out that were saved with other settings")
    no_progress: bool = option(False, "hide the progress bars")

    def run(self) -> int:
        from probe.replicate import REPORT_MD, ReplicateConfig, estimate_seconds, replicate, write_report

        overrides: dict[str, Any] = {"model": self.model, "data": self.data, "k": self.k, "task": self.task}
        if self.seeds:
            overrides["seeds"] = tuple(self.seeds)
        if self.lengths:
            overrides["lengths"] = tuple(self.lengths)
        if self.steps:
            overrides["steps"] = self.steps
        if self.test_size:
            overrides["test_size"] = self.test_size
        config = ReplicateConfig.quick(**overrides) if self.quick else ReplicateConfig(**overrides)
        if self.measure_only:
            text = write_report(config, self.out)
        else:
            seconds, missing = estimate_seconds(config, self.out)
            if missing:
                print(
                    f"training {missing} runs: about {seconds / 60:.0f} min on this machine "
                    f"(one step and one evaluation pass timed per length)",
                    file=sys.stderr,
                    flush=True,
                )
            text = replicate(config, self.out, progress=not self.no_progress, force=self.force)
        emit(text, None)
        print(f"wrote {self.out}/{REPORT_MD}", file=sys.stderr)
        return 0


@dataclass
class Explain(Command):
    """What a prompt does: position importance and faithfulness, the best real-token prompt, a layer lens."""

    name: ClassVar[str] = "explain"
    summary: ClassVar[str] = "position importance, a hard (real-token) prompt and a layer lens for a run or prompt"

    target: str = option(
        help="a run folder, or a prompt file / adapter (then give --data)", positional=True, metavar="run"
    )
    step: int | None = option(None, "the run's snapshot at this step (default: the last)")
    model: str | None = option(None, "model name or folder (default: the one the run or prompt records)")
    data: str | None = option(None, "labelled data file (default: the run's own); accuracies are on its test split")
    hard_steps: int = option(100, "steps of the hard-prompt search (default 100)", positive=True)
    lens_tokens: int = option(10_000, "tokens in the layer lens's contextual vocabulary (default 10000)", positive=True)
    lens_texts: int = option(32, "test texts the layer lens averages hidden states over (default 32)", positive=True)
    bootstrap: int = option(1000, "bootstrap resamples for the importance intervals (default 1000)", positive=True)
    seed: int = option(0, "seeds the bootstrap, the held-out slice and the search's batches (default 0)")
    format: Format = option("md", "output format: md, json or csv (default md; csv: the importance table)")
    out: str | None = option(None, "write to this file instead of stdout")
    no_progress: bool = option(False, "hide the progress bars")

    def run(self) -> int:
        from probe.explain import Readout, importance
        from probe.hardening import harden, save_hard_prompt
        from probe.lens import layer_lens
        from probe.models import load_model
        from probe.prompts import load_prompt
        from probe.runs import EXPLAIN, EXPLAIN_STEPS, is_any_run, is_run_folder, load_run

        run = load_run(self.target) if is_any_run(self.target) else None
        if run is not None:
            prompt = run.snapshot(self.step) if self.step is not None else run.latest_prompt()
        else:
            if self.data is None:
                raise ValueError(f"'{self.target}' is a prompt, not a run: give its task's data with --data FILE")
            prompt = load_prompt(self.target)
        model = load_model(self.model or prompt.base_model or "default")
        prompt.check_dim(model.dim, model.name)
        if self.data is not None:
            readout = Readout.from_data(model, self.data, seed=self.seed)
        else:
            assert run is not None
            readout = Readout.from_run(run, model)
        progress = not self.no_progress
        imp = importance(prompt, readout, bootstrap=self.bootstrap, seed=self.seed, progress=progress)
        writable = run is not None and is_run_folder(run.path)  # never write into another tool's folder
        hard = harden(
            prompt,
            readout,
            steps=self.hard_steps,
            seed=self.seed,
            progress=progress,
            state_dir=run.path if writable and run is not None else None,
        )
        lens = layer_lens(prompt, readout, texts=self.lens_texts, top_n=self.lens_tokens)
        result = {
            "source": str(self.target),
            "step": prompt.step,
            "model": model.name,
            "test_examples": imp.examples,
            "soft_accuracy": imp.soft_accuracy,
            "discretised_accuracy": hard.discretised_accuracy,
            "zero_shot_accuracy": hard.zero_shot_accuracy,
            "importance": [p.__dict__ | {"nearest_drop_ci": list(p.nearest_drop_ci)} for p in imp.positions],
            "hard_prompt": hard.to_dict(),
            "layer_lens": [r.__dict__ for r in lens.rows],
            "lens_holds_until": lens.holds_until,
        }
        if writable and run is not None:
            save_hard_prompt(hard, run.path)
            text = _json(result)
            # one file per measured step (the dashboard follows its step slider), and the latest as explain.json
            atomic_write_text(run.path / EXPLAIN_STEPS / f"step-{prompt.step:08d}.json", text)
            atomic_write_text(run.path / EXPLAIN, text)
        if self.format == "json":
            text = _json(result)
        elif self.format == "csv":
            text = imp.to_dataframe().to_csv(index=False)
        else:
            text = "\n\n".join(
                [
                    f"# What the prompt does: {self.target}"
                    + (f", step {prompt.step}" if prompt.step is not None else ""),
                    "## Which positions matter, and is each reading faithful?",
                    imp.to_markdown(),
                    "## The best real-token prompt",
                    hard.to_markdown(),
                    "## Layer lens",
                    lens.to_markdown(),
                ]
            )
        emit(text, self.out)
        return 0


def _json(obj: Any) -> str:
    from probe.explain import _to_json

    return _to_json(obj)


COMMANDS: tuple[type[Command], ...] = (Report, Train, Drift, Compare, Demo, Dashboard, Replicate, Explain)
