"""Exact coordinate search against PEZ for the hard prompt (issue 32): cost, accuracy and faithfulness.

    python bench/harden_search.py [--run RUN] [--data ../shared/data/ag_news.csv] [--steps 30] [--lengths 20]
        [--candidates 32] [--top-k 64] [--task-weight 1] [--readability-weight 0] [--test-size 500]

Reads a trained prompt (--run; default: trains class-label p=20 for --train-steps on the data into a temporary
folder), then for every hard-prompt length runs PEZ and the search for the same --steps from the same start (the
soft prompt's nearest tokens; a longer prompt: each position's nearest tokens in turn), timing each. Both are
scored by ``score_stand_ins`` on the same test rows (500 by default): test accuracy, gain retained and agreement
with 95% paired bootstrap intervals, KL(soft ‖ it), plus the held-out accuracy the search chose by, the share of
whole words, and the search's paired accuracy difference from PEZ. The search's own estimate prints before it
starts. Prints a markdown table and writes it to --out (default bench/harden_search.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ag_news.csv"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--run", help="a probe run to read (default: train one into a temporary folder)")
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--steps", type=int, default=30, help="steps of each hard-prompt method")
    parser.add_argument("--lengths", type=int, nargs="+", default=[20], help="hard-prompt lengths (soft p multiples)")
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=64)
    parser.add_argument("--task-weight", type=float, default=1.0)
    parser.add_argument("--readability-weight", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=["pez", "search"], choices=["pez", "search"])
    parser.add_argument("--out", default=str(HERE / "harden_search.md"))
    return parser.parse_args()


def main() -> None:
    args = _args()
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from probe import load_run
    from probe.core.models import load_model
    from probe.core.results import shown
    from probe.core.stats import example_draws, percentile_interval
    from probe.core.threads import configure_threads
    from probe.readings.explain import Readout
    from probe.readings.explain.faithfulness import score_stand_ins
    from probe.readings.explain.hardening import estimate_seconds, harden
    from probe.readings.explain.search import SearchSettings
    from probe.training.config import TrainConfig
    from probe.training.trainer import train

    threads = configure_threads()
    model = load_model("default", device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        if args.run:
            run = load_run(args.run)
        else:
            config = TrainConfig(data=args.data, init="class-label", length=20, steps=args.train_steps, seed=args.seed)
            run = train(config, Path(tmp) / "run", model=model, progress=False)
        readout = Readout.from_run(run, model, test_size=args.test_size)
        soft = run.latest_prompt().vectors
        settings = SearchSettings(args.candidates, args.top_k, args.task_weight, args.readability_weight)
        common = {"steps": args.steps, "batch_size": args.batch_size, "eval_every": args.eval_every, "search": settings}
        found, seconds, estimates = {}, {}, {}
        for length in args.lengths:
            for method in args.methods:
                name = f"{method} L={length}"
                estimates[name] = estimate_seconds(soft, readout, method=method, length=length, **common)
                print(f"{name}: estimate {estimates[name]:.0f} s", file=sys.stderr, flush=True)
                began = time.perf_counter()
                found[name] = harden(
                    soft, readout, method=method, length=length, seed=args.seed, progress=True, **common
                )
                seconds[name] = time.perf_counter() - began
                print(f"{name}: {seconds[name]:.0f} s, {found[name].headline()}", file=sys.stderr, flush=True)
        rows = {name: model.embeddings_numpy()[hard.token_ids] for name, hard in found.items()}
        per_example: dict[str, np.ndarray] = {}
        faith = score_stand_ins(
            soft, readout, stand_ins=rows, bootstrap=args.bootstrap, seed=args.seed, per_example=per_example
        )
    draws = example_draws(len(readout.splits.test), n=args.bootstrap, seed=args.seed, stream=2)
    lines = [
        f"Hard prompt: PEZ against exact coordinate search, default model, {Path(run.path).name} "
        f"(p={soft.shape[0]}), {len(readout.splits.test)} test rows, {args.steps} steps each, batch {args.batch_size}, "
        f"search {args.candidates} candidates x top-{args.top_k}, task weight {args.task_weight}, readability weight "
        f"{args.readability_weight}, seed {args.seed}, {threads} threads. Soft {faith.soft_accuracy:.3f}, zero-shot "
        f"{faith.zero_shot_accuracy:.3f}. Intervals: 95% paired bootstrap over the test rows ({args.bootstrap}).",
        "",
        "| stand-in | seconds (estimate) | held-out | test accuracy | gain retained | agreement | KL | whole words |"
        " vs PEZ (acc.) |",
        "|---|---:|---:|---|---|---|---:|---:|---|",
    ]
    for s in faith.stand_ins:
        hard = found.get(s.name)
        cost = f"{seconds[s.name]:.0f} ({estimates[s.name]:.0f})" if hard else "–"
        held = f"{hard.holdout_accuracy:.3f}" if hard else "–"
        words = f"{hard.word_share:.0%}" if hard else "–"
        versus = "–"
        pez = s.name.replace("search", "pez")
        if hard and s.name.startswith("search") and pez in per_example:
            diff = per_example[s.name] - per_example[pez]
            low, high = percentile_interval(diff[draws].mean(1))
            versus = f"{diff.mean():+.3f} [{low:+.3f}, {high:+.3f}]"
        cells = [
            f"{shown(getattr(s, k), '.3f')} [{shown(getattr(s, k + '_ci')[0], '.3f')}, "
            f"{shown(getattr(s, k + '_ci')[1], '.3f')}]"
            for k in ("accuracy", "gain_retained", "agreement")
        ]
        lines.append(f"| {s.name} | {cost} | {held} | " + " | ".join(cells) + f" | {s.kl:.3f} | {words} | {versus} |")
    lines += ["", *[f"- {name}: `{hard.shown}`" for name, hard in found.items()]]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
