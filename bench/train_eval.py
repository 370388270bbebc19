"""Where a training run's time goes: optimisation steps against evaluation, before and after (issue 15).

    python bench/train_eval.py [--before REF] [--after REF] [--data feelings ../shared/data/ag_news.csv] [--steps 150]

Runs ``probe train --init class-label --length 20`` with defaults, once with the code at ``REF`` (checked out
into a temporary git worktree: "today's numbers") and once with this checkout, one after the other in the
same run, each in a fresh process with an empty probe cache (so the zero-shot pass is paid, as on a first
run), then once more with this checkout and a warm cache. Evaluation time is measured by wrapping the
evaluation functions the trainer calls; step time is the sum of the per-step seconds the run logs. Padding
waste is computed from token lengths: random batches padded to their longest text (before) against
length-bucketed plans (after). Prints a markdown table and writes bench/train_eval.md and bench/train_eval.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Runs inside the probe under test (PYTHONPATH). Wraps what the trainer calls to evaluate, counting only the
# outermost call (the old discretised accuracy calls accuracy itself).
_DRIVER = r"""
import functools, json, sys, time
t_start = time.perf_counter()
import probe, probe.training.trainer as training, probe.tasks.kinds as tasks
from probe.training.trainer import TrainConfig, train
spent = {"eval": 0.0, "zero_shot": 0.0}
depth = [0]
def timed(fn, key):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        depth[0] += 1
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                spent[key] += time.perf_counter() - t
    return wrapper
for name in ("accuracy", "correctness"):  # what the trainer calls (older code: accuracy)
    if hasattr(training, name):
        setattr(training, name, timed(getattr(training, name), "eval"))
training.discretised_accuracy = timed(training.discretised_accuracy, "eval")
for cls in vars(tasks).values():  # every task class that defines its own zero-shot pass
    if isinstance(cls, type) and issubclass(cls, tasks.Task) and "zero_shot" in vars(cls):
        cls.zero_shot = timed(vars(cls)["zero_shot"], "zero_shot")
data, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
run = train(TrainConfig(data=data, init="class-label", length=20, steps=steps), out, progress=False)
wall = time.perf_counter() - t_start
train_rows = [r for r in run.records() if r.get("kind") == "train"]
print(json.dumps({
    "wall_s": wall,
    "steps_s": sum(r["seconds"] for r in train_rows),
    "eval_s": spent["eval"],
    "zero_shot_s": spent["zero_shot"],
    "soft_accuracy": run.manifest.soft_accuracy,
    "discretised_accuracy": run.manifest.discretised_accuracy,
    "zero_shot_accuracy": run.manifest.zero_shot_accuracy,
    "evaluations": [
        {k: r.get(k) for k in ("step", "on", "rows", "soft_accuracy", "discretised_accuracy")}
        for r in run.records() if r.get("kind") == "eval"
    ],
}))
"""


def _train(code_root: Path, data: str, steps: int, cache: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root), "PROBE_CACHE_DIR": cache, "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [sys.executable, "-c", _DRIVER, data, str(steps), out + "/run"],
            capture_output=True,
            text=True,
            env=env,
            cwd=code_root,
            timeout=3600,
        )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def padding(data: str, prompt: int = 20, batch: int = 16, eval_batch: int = 32) -> dict:
    """Padding waste of evaluation and training batches, before (random order) and after (planned)."""
    sys.path.insert(0, str(ROOT))
    from probe.core.batching import padding_waste, plan_batches
    from probe.core.data import train_test
    from probe.core.models import load_model
    from probe.core.sampling import seeded_batches
    from probe.tasks.kinds import EVAL_MAX_TOKENS, PASS_OVERHEAD, TRAIN_MAX_TOKENS

    model = load_model("default", device="cpu")
    splits = train_test(data)
    test = [len(x) for x in model.token_ids(splits.test.texts, max_length=128)]
    train = [len(x) for x in model.token_ids(splits.train.texts, max_length=128)]
    chunks = [list(range(i, min(i + eval_batch, len(test)))) for i in range(0, len(test), eval_batch)]
    steps = [rows for _, (step, rows) in zip(range(150), seeded_batches(len(train), batch, 0), strict=False)]
    planned_steps = [
        [rows[j] for j in b]
        for rows in steps
        for b in plan_batches(
            [train[i] for i in rows], max_tokens=TRAIN_MAX_TOKENS, overhead=PASS_OVERHEAD, extra=prompt
        ).batches
    ]
    return {
        "eval_before": padding_waste(test, chunks, prompt),
        "eval_after": plan_batches(test, max_tokens=EVAL_MAX_TOKENS, overhead=PASS_OVERHEAD, extra=prompt).waste,
        "train_before": padding_waste(train, steps, prompt),
        "train_after": padding_waste(train, planned_steps, prompt),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="2c3b1ae", help="git ref of today's code (default: before issue 15)")
    parser.add_argument("--after", default=None, help="git ref of the new code (default: this checkout as it is)")
    parser.add_argument("--data", nargs="+", default=["feelings", str(ROOT.parent / "shared/data/ag_news.csv")])
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        after = Path(tmp) / "after" if args.after else ROOT
        for ref, folder in ((args.before, before), (args.after, after)):
            if ref:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(folder), ref], check=True
                )
        try:
            for data in args.data:
                name = Path(data).stem
                cache = tempfile.mkdtemp(dir=tmp)
                for label, root, cache_dir in (
                    ("before", before, tempfile.mkdtemp(dir=tmp)),
                    ("after, cold cache", after, cache),
                    ("after, warm cache", after, cache),
                ):
                    result = _train(root, data, args.steps, cache_dir)
                    result.update(data=name, code=label)
                    rows.append(result)
                    print(json.dumps(result), file=sys.stderr, flush=True)
                waste = padding(data)
                for r in rows[-3:]:
                    new = r["code"] != "before"
                    r["eval_padding"] = waste["eval_after" if new else "eval_before"]
                    r["train_padding"] = waste["train_after" if new else "train_before"]
        finally:
            for folder in (before, after):
                if folder != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False)
    (HERE / "train_eval.json").write_text(json.dumps(rows, indent=2) + "\n")
    text = table(rows, args.steps)
    (HERE / "train_eval.md").write_text("# Where a training run's time goes\n\n" + text + "\n")
    print(text)


def table(rows: list[dict], steps: int) -> str:
    lines = [
        f"`probe train --data D --init class-label --length 20 --steps {steps}`, 2 CPU cores, one run:",
        "",
        "| data | code | wall s | steps s | evaluation s | zero-shot s | other s | outside steps | eval padding "
        "| train padding | final acc | discretised | zero-shot |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        other = r["wall_s"] - r["steps_s"] - r["eval_s"] - r["zero_shot_s"]
        outside = 1 - r["steps_s"] / r["wall_s"]
        lines.append(
            f"| {r['data']} | {r['code']} | {r['wall_s']:.1f} | {r['steps_s']:.1f} | {r['eval_s']:.1f} | "
            f"{r['zero_shot_s']:.1f} | {other:.1f} | {outside:.0%} | {r['eval_padding']:.0%} | "
            f"{r['train_padding']:.0%} | {r['soft_accuracy']:.4f} | {r['discretised_accuracy']:.4f} | "
            f"{r['zero_shot_accuracy']:.4f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
