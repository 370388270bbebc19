"""What the readable-prompt terms cost a training step (issue 22's targets), on this machine.

    python bench/readable.py [--data ../shared/data/ag_news.csv] [--steps 8] [--rounds 3] [--frontier]

Builds probe's Trainer for the default model, class-label p=20, the default batch, on the data, once per setting:
plain prompt tuning, the projection term (γ = 1 toward a text), the faithfulness term at λ = 0.5 (two passes) and
at λ = 1 (PEZ: one pass at the nearest tokens). The settings' steps are timed interleaved, ``--rounds`` rounds of
``--steps`` steps each, so that every ratio is measured in one run on the same machine state; the table gives the
median step and its ratio to plain. ``--frontier`` also times ``probe frontier --quick`` on the data, end to end.
Prints a markdown table and writes bench/readable.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ag_news.csv"

SETTINGS = {
    "plain": {},
    "projection term (γ=1, text target)": {"project_to": "text:science and technology", "project_weight": 1.0},
    "faithfulness term λ=0.5 (two passes)": {"faithfulness_weight": 0.5},
    "faithfulness term λ=1 (PEZ)": {"faithfulness_weight": 1.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--steps", type=int, default=8, help="steps per setting per round (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--frontier", action="store_true", help="also time probe frontier --quick on the data")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from probe.core.models import load_model
    from probe.core.sampling import seeded_batches
    from probe.core.threads import configure_threads
    from probe.training.config import TrainConfig
    from probe.training.trainer import Trainer

    threads = configure_threads()
    model = load_model("default", device="cpu")
    rows, lines = [], []
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for name, extra in SETTINGS.items():
            config = TrainConfig(data=args.data, init="class-label", length=20, steps=1000, **extra)
            trainers[name] = Trainer(config, Path(tmp) / f"run{len(trainers)}", model=model)
        train = next(iter(trainers.values())).splits.train
        batches = seeded_batches(len(train), TrainConfig().batch_size, 0)
        plan = [next(batches)[1] for _ in range(args.steps * args.rounds + 2)]
        seconds: dict[str, list[float]] = {name: [] for name in trainers}
        for trainer in trainers.values():  # warm: allocation and kernel choice
            for rows_ in plan[:2]:
                trainer.step(0, [train.texts[i] for i in rows_], [train.targets[i] for i in rows_])
        for r in range(args.rounds):
            for name, trainer in trainers.items():
                for s in range(args.steps):
                    rows_ = plan[2 + r * args.steps + s]
                    began = time.perf_counter()
                    trainer.step(s, [train.texts[i] for i in rows_], [train.targets[i] for i in rows_])
                    seconds[name].append(time.perf_counter() - began)
        plain = statistics.median(seconds["plain"])
        for name, values in seconds.items():
            median = statistics.median(values)
            rows.append((name, median, median / plain))
    lines += [
        f"# Readable-prompt terms: step cost ({threads} threads, {Path(args.data).name}, default model, "
        f"class-label p=20, batch {TrainConfig().batch_size})",
        "",
        f"`python bench/readable.py --data {args.data} --steps {args.steps} --rounds {args.rounds}`: "
        f"{args.rounds} interleaved rounds of {args.steps} steps per setting; median step.",
        "",
        "| setting | median step (s) | x plain | target |",
        "|---|---:|---:|---|",
    ]
    targets = {"projection": "≤ 1.10x", "λ=0.5": "≤ 2.1x", "PEZ": "one pass"}
    for name, median, ratio in rows:
        target = next((t for key, t in targets.items() if key in name), "")
        lines.append(f"| {name} | {median:.3f} | {ratio:.2f} | {target} |")
    if args.frontier:
        with tempfile.TemporaryDirectory() as tmp:
            began = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "probe",
                    "frontier",
                    "--quick",
                    "--data",
                    args.data,
                    "--out",
                    tmp,
                    "--no-progress",
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            wall = time.perf_counter() - began
        estimate = next((line for line in done.stderr.splitlines() if line.startswith("training")), "")
        lines += [
            "",
            f"`probe frontier --quick --data {Path(args.data).name}`: {wall / 60:.1f} min end to end "
            f"(target < 10 min), exit {done.returncode}; its estimate: “{estimate}”.",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "readable.md").write_text(text)


if __name__ == "__main__":
    main()
