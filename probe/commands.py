"""CLI subcommands beyond ``report``: train, drift, compare, demo, dashboard. Each adds its own parser.

The ``train`` options are generated from :class:`probe.training.TrainConfig`, so the CLI and the API share
one schema.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Callable
from typing import Any

from probe.cli import emit as _emit

FORMATS = ("md", "json", "csv")


def _table(df: Any, fmt: str) -> str:
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", indent=2)
    return df.to_markdown(index=False, floatfmt=".4f")


# --------------------------------------------------------------------------- train

_HELP = {
    "model": "model name or folder ('default' = bundled all-MiniLM-L6-v2)",
    "data": "CSV/TSV/JSONL with text and label columns, or a bundled set: feelings, topics",
    "init": "random-uniform | sampled-vocab | class-label | text",
    "init_scale": "random-uniform bound: a number (paper 0.5) or 'vocab-norm'",
    "eval_size": "test rows evaluated during training (seeded, stratified); the end uses the whole split",
    "eval_discrete": "also measure the discretised accuracy at evaluations during training (always at the end)",
}


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    from probe.training import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        convert: Callable[[str], Any] = str
        if kind is bool:
            parser.add_argument(flag, dest=f.name, action="store_true", help=_HELP.get(f.name, "off by default"))
            continue
        if kind is int:
            convert = int
        elif kind is float:
            convert = float
        elif f.name == "init_scale":
            convert = _scale
        parser.add_argument(
            flag, dest=f.name, type=convert, default=f.default, help=_HELP.get(f.name, f"default {f.default}")
        )


def _scale(text: str) -> float | str:
    if text == "vocab-norm":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'vocab-norm', got {text!r}") from None


def cmd_train(args: argparse.Namespace) -> int:
    from probe.training import TrainConfig, train

    fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**fields)
    run = train(config, args.out, resume=args.resume, progress=not args.no_progress)
    final = run.manifest.get("final", {})
    print(
        f"run {run.path}: {len(run.steps)} snapshots, accuracy {final.get('accuracy', float('nan')):.3f} "
        f"(discretised {final.get('discrete_accuracy', float('nan')):.3f}, zero-shot "
        f"{run.manifest.get('zero_shot_accuracy', float('nan')):.3f})"
    )
    return 0


def add_train(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a soft prompt and write a run folder",
        description="Train a soft prompt with the model frozen; snapshots are written as it goes.",
    )
    p.add_argument("--out", required=True, help="run folder to create (or to resume with --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last snapshot")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _config_arguments(p)
    p.set_defaults(func=cmd_train)


# --------------------------------------------------------------------------- drift


def cmd_drift(args: argparse.Namespace) -> int:
    from probe.drift import drift_table, summarize_run
    from probe.index import VocabIndex
    from probe.models import load_model
    from probe.runs import load_run

    run = load_run(args.run)
    model = load_model(args.model or run.manifest["model"], device="cpu")
    index = VocabIndex.for_model(model)
    table = drift_table(run, model, index=index, k=args.k)
    if args.summary:
        import pandas as pd

        table = pd.DataFrame([summarize_run(run, model, table, index=index, k=args.k).to_dict()])
    _emit(_table(table, args.format), args.out)
    return 0


def add_drift(sub: Any) -> None:
    p = sub.add_parser("drift", help="how each position moved over a run's snapshots")
    p.add_argument("run", help="a probe run folder")
    p.add_argument("--model", help="override the model recorded in the run")
    p.add_argument("-k", type=int, default=5, help="top-k for the neighbour overlap (default 5)")
    p.add_argument("--summary", action="store_true", help="one line per run instead of per step and position")
    p.add_argument("--format", choices=FORMATS, default="md")
    p.add_argument("--out", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_drift)


# --------------------------------------------------------------------------- compare


def cmd_compare(args: argparse.Namespace) -> int:
    from probe.compare import compare_prompts
    from probe.index import VocabIndex
    from probe.models import load_model
    from probe.prompts import load_prompt

    a, b = load_prompt(args.a), load_prompt(args.b)
    if a.base_model and b.base_model and a.base_model != b.base_model and not args.model:
        raise ValueError(
            f"'{args.a}' was trained on {a.base_model} and '{args.b}' on {b.base_model}; "
            "compare prompts of the same model"
        )
    model = load_model(args.model or a.base_model or "default", device="cpu")
    a.check_dim(model.dim, model.name)
    b.check_dim(model.dim, model.name)
    result = compare_prompts(a, b, VocabIndex.for_model(model), k=args.k, display=model.vocabulary.display)
    if args.format == "md":
        text = result.to_markdown()
    else:
        text = _table(result.matching if args.matched else result.by_position, args.format)
    _emit(text, args.out)
    return 0


def add_compare(sub: Any) -> None:
    p = sub.add_parser("compare", help="compare two prompts of the same model position by position")
    p.add_argument("a", help="prompt or run A")
    p.add_argument("b", help="prompt or run B")
    p.add_argument("--model", help="model name or folder (default: the one prompt A records)")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--matched", action="store_true", help="csv/json: the Hungarian matching instead")
    p.add_argument("--format", choices=FORMATS, default="md")
    p.add_argument("--out")
    p.set_defaults(func=cmd_compare)


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from probe.demo import run_demo
    from probe.training import TrainConfig

    base = replace(TrainConfig(), steps=args.steps, length=args.length, seed=args.seed, data=args.data)
    _, text = run_demo(args.out, base=base, progress=not args.no_progress, force=args.force)
    _emit(text, None)
    return 0


def add_demo(sub: Any) -> None:
    from probe.training import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("demo", help="train one prompt per paper init on the default model and compare them")
    p.add_argument("--out", help="runs folder (default $PROBE_RUNS_DIR or ./probe-runs)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--length", type=int, default=d.length)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--data", default=d.data, help="bundled set or labelled file (default feelings)")
    p.add_argument("--force", action="store_true", help="retrain runs whose settings differ")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)


# --------------------------------------------------------------------------- dashboard


def app_path() -> str:
    """Path of the Streamlit app: next to the package in a checkout, or installed beside it."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "app.py", here / "app.py"):
        if candidate.is_file():
            return str(candidate)
    raise FileNotFoundError("app.py not found next to the probe package; run from a checkout of probe")


def cmd_dashboard(args: argparse.Namespace) -> int:
    import subprocess

    from probe.demo import default_runs_dir, run_demo
    from probe.runs import find_runs

    runs_dir = args.runs_dir or str(default_runs_dir())
    if not args.no_demo and not find_runs(runs_dir):
        print(f"no runs in {runs_dir}: training the demo runs first (about two minutes)", file=sys.stderr)
        run_demo(runs_dir, progress=True)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        app_path(),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
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
    print(f"probe dashboard: http://{args.host}:{args.port}  (runs: {runs_dir}; Ctrl-C to stop)", flush=True)
    return subprocess.call(command)


def add_dashboard(sub: Any) -> None:
    p = sub.add_parser("dashboard", help="serve the Streamlit dashboard (trains the demo runs if there are none)")
    p.add_argument("runs_dir", nargs="?", help="runs folder (default $PROBE_RUNS_DIR or ./probe-runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default localhost only)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--no-demo", action="store_true", help="do not train the demo runs when the folder is empty")
    p.set_defaults(func=cmd_dashboard)


# --------------------------------------------------------------------------- replicate


def cmd_replicate(args: argparse.Namespace) -> int:
    from probe.replicate import REPORT_MD, ReplicateConfig, replicate, write_report

    overrides: dict[str, Any] = {"model": args.model, "data": args.data, "k": args.k}
    if args.seeds:
        overrides["seeds"] = tuple(args.seeds)
    if args.lengths:
        overrides["lengths"] = tuple(args.lengths)
    if args.steps:
        overrides["steps"] = args.steps
    config = ReplicateConfig.quick(**overrides) if args.quick else ReplicateConfig(**overrides)
    if args.measure_only:
        text = write_report(config, args.out)
    else:
        text = replicate(config, args.out, progress=not args.no_progress)
    _emit(text, None)
    print(f"wrote {args.out}/{REPORT_MD}", file=sys.stderr)
    return 0


def add_replicate(sub: Any) -> None:
    p = sub.add_parser("replicate", help="measure the paper's findings on learned prompts (section 7)")
    p.add_argument("--quick", action="store_true", help="2 seeds x 40 steps (about 5 minutes on 2 cores)")
    p.add_argument("--out", default="probe-replicate", help="folder for runs and the report (default probe-replicate)")
    p.add_argument("--model", default="default")
    p.add_argument("--data", default="feelings")
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--lengths", type=int, nargs="+")
    p.add_argument("--steps", type=int)
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--measure-only", action="store_true", help="only recompute the report from the saved runs")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_replicate)


ALL: list[Callable[[Any], None]] = [add_train, add_drift, add_compare, add_demo, add_dashboard, add_replicate]
