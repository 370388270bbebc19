"""The hard-prompt estimates against the time they predict (issue 32: "the estimate is printed first").

    python bench/harden_estimate.py [--run RUN] [--data ../shared/data/ag_news.csv] [--steps 10] [--test-size 500]

For PEZ and the exact search, from the same soft prompt (--run; default: trains class-label p=20 for 150 steps on
the data into a temporary folder): the estimate ``estimate_seconds`` prints, the seconds ``harden`` then takes
with the same settings, and their ratio. Prints a markdown table and writes it to --out (default
bench/harden_estimate.md).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--run", help="a probe run to read (default: train one into a temporary folder)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--out", default=str(HERE / "harden_estimate.md"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from probe import load_run
    from probe.core.models import load_model
    from probe.core.threads import configure_threads
    from probe.readings.explain import Readout
    from probe.readings.explain.hardening import estimate_seconds, harden
    from probe.training.config import TrainConfig
    from probe.training.trainer import train

    threads = configure_threads()
    model = load_model("default", device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.run:
            run = load_run(args.run)
        else:
            config = TrainConfig(data=args.data, init="class-label", length=20, steps=150)
            run = train(config, Path(tmp) / "run", model=model, progress=False)
        readout = Readout.from_run(run, model, test_size=args.test_size)
        soft = run.latest_prompt().vectors
        for method in ("pez", "search"):
            began = time.perf_counter()
            estimate = estimate_seconds(soft, readout, method=method, steps=args.steps)
            timing = time.perf_counter() - began
            began = time.perf_counter()
            harden(soft, readout, method=method, steps=args.steps, seed=0)
            seconds = time.perf_counter() - began
            rows.append((method, estimate, seconds, timing))
            print(f"{method}: estimate {estimate:.0f} s, took {seconds:.0f} s", file=sys.stderr, flush=True)
    lines = [
        f"Hard-prompt estimates, {Path(run.path).name} (p={soft.shape[0]}), {len(readout.splits.train)} training and "
        f"{len(readout.splits.test)} test rows, {args.steps} steps, default settings, {threads} threads.",
        "",
        "| method | estimate (s) | measured (s) | measured / estimate | timing the estimate (s) |",
        "|---|---:|---:|---:|---:|",
        *[f"| {m} | {e:.1f} | {s:.1f} | {s / e:.2f} | {t:.1f} |" for m, e, s, t in rows],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
