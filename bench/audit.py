"""What the audit's two new readings cost (issue 23's targets), on this machine.

    python bench/audit.py [--data ../shared/data/ag_news.csv] [--run RUN] [--texts 200] [--tokens 10000]

Trains (or reuses, with --run) a class-label p=20 prompt on the data (30 steps: the cost does not depend on the
values), then times in one process with an empty probe cache: input attribution over the first --texts test texts
(every occluded variant scored with the prompt and, once, without it), and a trigger scan of --tokens frequent
tokens; each twice, cold (the frozen model's side computed) and warm (read from the cache, as for the second run
of an audit). Prints a markdown table and writes bench/audit.md.
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PROBE_CACHE_DIR"] = str(Path(tmp) / "cache")
        sys.path.insert(0, str(ROOT))
        from probe import load_run
        from probe.core.models import load_model
        from probe.core.threads import configure_threads
        from probe.readings.explain import Readout
        from probe.readings.explain.attribution import input_attribution, occlusion_plan, trigger_scan
        from probe.training.config import TrainConfig
        from probe.training.trainer import train

        threads = configure_threads()
        model = load_model("default", device="cpu")
        if args.run:
            run = load_run(args.run)
        else:
            config = TrainConfig(data=args.data, init="class-label", length=20, steps=30)
            run = train(config, Path(tmp) / "run", model=model, progress=False)
        readout = Readout.from_run(run, model)
        vectors = run.latest_prompt().vectors
        texts = readout.splits.test.texts[: args.texts]
        variants = len(occlusion_plan(texts)[1])
        rows = []
        for label, fn in (
            (f"input attribution, {len(texts)} test texts ({variants} occluded variants)",
             lambda: input_attribution(vectors, readout, texts=texts)),
            (f"trigger scan, {args.tokens} tokens x 2 texts",
             lambda: trigger_scan(vectors, readout, tokens=args.tokens)),
        ):  # fmt: skip
            for state in ("cold", "warm"):
                began = time.perf_counter()
                fn()
                rows.append((label, state, time.perf_counter() - began))
    lines = [
        f"# Audit readings: cost ({threads} threads, {Path(args.data).name}, default model, p=20)",
        "",
        f"`python bench/audit.py --data {args.data} --texts {args.texts} --tokens {args.tokens}`; cold: the frozen "
        "model's side computed; warm: read from probe's cache (every run of an audit after the first).",
        "",
        "| reading | cache | seconds | target |",
        "|---|---|---:|---|",
    ]
    for label, state, seconds in rows:
        target = "< 60 s" if label.startswith("input") else "< 180 s"
        lines.append(f"| {label} | {state} | {seconds:.1f} | {target} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "audit.md").write_text(text)


if __name__ == "__main__":
    main()
