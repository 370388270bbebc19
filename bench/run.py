"""probe benchmarks: print tables and write bench/results.md and bench/results.json.

    python bench/run.py            # full (about 15-25 minutes on 2 cores)
    python bench/run.py --quick    # small version (about 3-5 minutes)

Everything that is compared is measured side by side in the same process and run, interleaved, and reported
as ratios, because absolute times on shared machines drift. These are measurements, not tests: nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import faiss  # noqa: E402
import torch  # noqa: E402

from probe.core.threads import configure_threads  # noqa: E402

THREADS = configure_threads()


def timed(fn, repeats: int = 3) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ------------------------------------------------------------------ 1. neighbour search for drift


def sgemm_limit(q: torch.Tensor, x: torch.Tensor, repeats: int) -> float:
    """The machine's sgemm time for these FLOPs: the best of one big matmul and cache-sized blocks."""
    out = torch.empty(min(4096, q.shape[0]), min(1024, x.shape[0]))

    def blocked() -> None:
        for qs in range(0, q.shape[0], 4096):
            for xs in range(0, x.shape[0], 1024):
                qb, xb = q[qs : qs + 4096], x[xs : xs + 1024]
                torch.mm(qb, xb.T, out=out[: qb.shape[0], : xb.shape[0]])

    def whole() -> None:
        torch.mm(q, x.T)

    candidates = [timed(blocked, repeats)]
    if q.shape[0] * x.shape[0] * 4 < 4 << 30:
        candidates.append(timed(whole, repeats))
    return min(candidates)


def bench_search(name: str, vocab: np.ndarray, queries: np.ndarray, k: int = 10, repeats: int = 3) -> dict:
    from probe.core.index import VocabIndex

    index = VocabIndex(vocab)
    index.search(queries[:8], k)  # build the FAISS index outside the timing
    xt, qt = torch.from_numpy(unit(vocab)), torch.from_numpy(unit(queries))
    n, v, d = len(queries), len(vocab), vocab.shape[1]
    flops = 2.0 * n * v * d

    def probe_path() -> None:
        index.search(queries, k)

    def torch_brute() -> None:
        for s in range(0, n, 4096):  # the batch probe's own torch backend uses
            torch.topk(qt[s : s + 4096] @ xt.T, k, dim=1)

    t_probe = timed(probe_path, repeats)
    t_torch = timed(torch_brute, repeats)
    t_limit = sgemm_limit(qt, xt, repeats)
    return {
        "case": name,
        "vocab": v,
        "dim": d,
        "queries": n,
        "k": k,
        "probe_qps": n / t_probe,
        "probe_gflops": flops / t_probe / 1e9,
        "torch_qps": n / t_torch,
        "torch_gflops": flops / t_torch / 1e9,
        "sgemm_gflops": flops / t_limit / 1e9,
        "ratio_to_sgemm": t_limit / t_probe,
        "speedup_vs_torch": t_torch / t_probe,
    }


def section_search(quick: bool) -> list[dict]:
    from probe import load_model
    from probe.formats.discovery import load_run

    rows = []
    model = load_model("default", device="cpu")
    vocab = model.embeddings_numpy()
    rng = np.random.default_rng(0)
    demo = ROOT / "probe-runs"
    runs = [load_run(p) for p in sorted(demo.iterdir())] if demo.is_dir() else []
    if runs:  # real drift work: every snapshot x position of the demo runs
        queries = np.concatenate([np.concatenate([p.vectors for p in r.iter_snapshots()]) for r in runs])
        label = f"default model, {len(runs)} demo runs"
    else:
        queries = rng.normal(size=(960, vocab.shape[1])).astype(np.float32)
        label = "default model, 960 random queries"
    rows.append(bench_search(label, vocab, queries))
    sizes = [(50_000, 768, 2000), (128_000, 4096, 500)] if quick else [(50_000, 768, 10_000), (128_000, 4096, 2000)]
    for v, d, n in sizes:
        x = rng.normal(size=(v, d)).astype(np.float32)
        q = rng.normal(size=(n, d)).astype(np.float32)
        rows.append(bench_search(f"synthetic {v // 1000}k x {d}", x, q, repeats=2 if v > 100_000 else 3))
        del x
    return rows


# ------------------------------------------------------------------ 2. large vocabularies: exact vs approximate


def section_large_vocab(quick: bool) -> list[dict]:
    v, d = (32_000, 1024) if quick else (128_000, 4096)
    n = 500
    rng = np.random.default_rng(1)
    x = unit(rng.normal(size=(v, d)).astype(np.float32))
    # queries near real rows, as trained prompts are: a row plus noise
    q = unit(x[rng.choice(v, n, replace=False)] + 0.5 * unit(rng.normal(size=(n, d)).astype(np.float32)))
    k = 10
    exact = faiss.IndexFlatIP(d)
    exact.add(x)
    _, truth = exact.search(q, k)
    rows = []
    for name, make in (
        ("flat (exact)", lambda: faiss.IndexFlatIP(d)),
        ("sq-fp16", lambda: faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)),
        ("hnsw32 (ip)", lambda: faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)),
    ):
        index = make()
        t = time.perf_counter()
        if not index.is_trained:
            index.train(x)
        index.add(x)
        build = time.perf_counter() - t
        if isinstance(index, faiss.IndexHNSWFlat):
            index.hnsw.efSearch = 128
        search = timed(lambda index=index: index.search(q, k), 2)
        _, found = index.search(q, k)
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)]))
        memory = len(faiss.serialize_index(index)) / 2**20
        rows.append(
            {
                "index": name,
                "vocab": v,
                "dim": d,
                "recall_at_10": recall,
                "qps": n / search,
                "build_s": build,
                "memory_mb": memory,
            }
        )
    return rows


# ------------------------------------------------------------------ 3. training overhead

_PLAIN = """
import sys, time, json, numpy as np, torch
import torch.nn.functional as F
from peft import PromptTuningConfig, get_peft_model
from transformers import AutoModel, AutoTokenizer
from probe.core.models import bundled_model_path
from probe.core.data import train_test
from probe.core.threads import configure_threads
configure_threads()
steps = int(sys.argv[1])
torch.manual_seed(0)
path = bundled_model_path()
tok = AutoTokenizer.from_pretrained(path)
base = AutoModel.from_pretrained(path).eval().requires_grad_(False)
data = train_test("feelings")
names = data.train.label_names
with torch.no_grad():
    b = tok(names, padding=True, return_tensors="pt")
    h = base(**b).last_hidden_state
    m = b["attention_mask"].unsqueeze(-1).float()
    labels = F.normalize((h * m).sum(1) / m.sum(1), dim=-1)
model = get_peft_model(base, PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=20)).eval()
weight = model.prompt_encoder["default"].embedding.weight
opt = torch.optim.AdamW([weight], lr=0.01, weight_decay=0.0)
texts, targets = data.train.texts, data.train.targets
times = []
for step in range(1, steps + 1):
    rows = np.random.default_rng([0, step]).choice(len(texts), 16, replace=False)
    t = time.perf_counter()
    b = tok([texts[i] for i in rows], padding=True, truncation=True, max_length=128, return_tensors="pt")
    b = {k: v for k, v in b.items() if k in ("input_ids", "attention_mask")}
    h = model(**b).last_hidden_state[:, 20:]
    m = b["attention_mask"].unsqueeze(-1).float()
    e = F.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    loss = F.cross_entropy(e @ labels.T / 0.05, torch.tensor([targets[i] for i in rows]))
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    times.append(time.perf_counter() - t)
print(json.dumps({"median": float(np.median(times[5:])), "mean": float(np.mean(times[5:]))}))
"""

_PROBE = """
import sys, json, time, tempfile, numpy as np
from probe.training.trainer import TrainConfig, train
from probe.core.threads import configure_threads
configure_threads()
steps = int(sys.argv[1])
times, last = [], [None]
def tick(record):  # time between consecutive steps: forward, backward, update, metrics line, snapshots
    now = time.perf_counter()
    if last[0] is not None:
        times.append(now - last[0])
    last[0] = now
with tempfile.TemporaryDirectory() as d:
    # evaluations happen at step 0 and the last step only, outside the timed intervals
    config = TrainConfig(init="sampled-vocab", steps=steps, snapshot_every=10, eval_every=10**6)
    train(config, d + "/run", progress=False, callbacks=[tick])
print(json.dumps({"median": float(np.median(times[5:])), "mean": float(np.mean(times[5:]))}))
"""


def _run_script(code: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def section_training(quick: bool) -> dict:
    steps = "40" if quick else "100"
    rounds = 2 if quick else 3
    plain, ours = [], []
    for _ in range(rounds):  # interleaved: plain, probe, plain, probe, ...
        plain.append(_run_script(_PLAIN, steps)["median"])
        ours.append(_run_script(_PROBE, steps)["median"])
    p, o = statistics.median(plain), statistics.median(ours)
    return {
        "steps": int(steps),
        "rounds": rounds,
        "plain_peft_step_s": p,
        "probe_step_s": o,
        "ratio": o / p,
        "plain_all": plain,
        "probe_all": ours,
    }


# ------------------------------------------------------------------ 4. projection

_FIT = """
import json, sys, time
t0 = time.perf_counter()
import probe
from probe import load_model, VocabIndex
from probe.readings.projection import MapConfig, fit_map
m = load_model("default", device="cpu"); idx = VocabIndex.for_model(m)
t1 = time.perf_counter()
vmap = fit_map(m, idx, MapConfig(n_vocab=int(sys.argv[1])), use_cache=sys.argv[2] == "1")
t2 = time.perf_counter()
print(json.dumps({"setup_s": t1 - t0, "fit_s": t2 - t1, "trust": vmap.trustworthiness, "n": len(vmap.token_ids)}))
"""


def section_projection(quick: bool) -> dict:
    n_vocab = "3000" if quick else "10000"
    with tempfile.TemporaryDirectory() as cache:
        env_cache = {"PROBE_CACHE_DIR": cache, "NUMBA_CACHE_DIR": str(Path(cache) / "numba")}
        old = {k: os.environ.get(k) for k in env_cache}
        os.environ.update(env_cache)
        try:
            cold = _run_script(_FIT, n_vocab, "1")  # fresh process, empty Numba cache, empty map cache
            warm_numba = _run_script(_FIT, n_vocab, "0")  # fresh process, Numba cache filled, no map cache
            cached = _run_script(_FIT, n_vocab, "1")  # fresh process, map read from the cache
            prep = _dashboard_prep(int(n_vocab))
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return {
        "n_vocab": int(n_vocab),
        "cold_fit_s": cold["fit_s"],
        "warm_numba_fit_s": warm_numba["fit_s"],
        "cached_load_s": cached["fit_s"],
        "trustworthiness": cold["trust"],
        **prep,
    }


def _dashboard_prep(n_vocab: int) -> dict:
    from probe import VocabIndex, load_model
    from probe.dashboard.views import neighbour_ids, trajectories
    from probe.formats.discovery import find_runs
    from probe.readings.projection import MapConfig, fit_map

    runs = find_runs(ROOT / "probe-runs")
    if not runs:
        return {"dashboard_prep_note": "no probe-runs/ (run probe demo first)"}
    model = load_model("default", device="cpu")
    index = VocabIndex.for_model(model)
    extra = neighbour_ids(runs, index)
    t = time.perf_counter()
    vmap = fit_map(model, index, MapConfig(n_vocab=n_vocab), extra_ids=extra)
    fit = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as coords:
        t = time.perf_counter()
        paths = trajectories(vmap, runs, index, display=model.vocabulary.display, cache_dir=coords)
        first = time.perf_counter() - t
        t = time.perf_counter()
        trajectories(vmap, runs, index, display=model.vocabulary.display, cache_dir=coords)
        again = time.perf_counter() - t
    t = time.perf_counter()
    fit_map(model, index, MapConfig(n_vocab=n_vocab), extra_ids=extra)
    cached_map = time.perf_counter() - t
    dashboard = _dashboard_times()
    return {
        "demo_runs": len(runs),
        "points_projected": len(paths),
        "map_fit_with_extra_s": fit,
        "transform_all_snapshots_s": first,
        "cached_projection_load_s": cached_map + again,
        **dashboard,
    }


def _dashboard_times() -> dict:
    """The app on the demo runs under Streamlit's AppTest: first run (cold caches) and a rerun after it."""
    from streamlit.testing.v1 import AppTest

    os.environ["PROBE_RUNS_DIR"] = str(ROOT / "probe-runs")
    t = time.perf_counter()
    at = AppTest.from_file(str(ROOT / "probe" / "dashboard" / "app.py"), default_timeout=600).run()
    first = time.perf_counter() - t
    t = time.perf_counter()
    at.sidebar.slider[0].set_value(3).run()
    rerun_k = time.perf_counter() - t
    t = time.perf_counter()
    at.run()
    rerun = time.perf_counter() - t
    return {"dashboard_first_run_s": first, "dashboard_rerun_k_change_s": rerun_k, "dashboard_rerun_s": rerun}


# ------------------------------------------------------------------ 5. memory of drift over a long run

_MEMORY = """
import json, resource, sys, tempfile
import numpy as np
from probe.readings.drift import drift_frames
from probe.core.index import VocabIndex
snapshots, positions, dim = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
vocab = np.random.default_rng(0).normal(size=(1000, dim)).astype(np.float32)
index = VocabIndex(vocab)
def stream():
    rng = np.random.default_rng(1)
    for s in range(snapshots):  # generated one at a time, as a run folder is read
        yield s, rng.normal(size=(positions, dim)).astype(np.float32)
rows = 0
for frame in drift_frames(stream(), index, k=5, chunk=64):
    rows += len(frame)  # a consumer that writes rows out instead of keeping them
# VmHWM is this process's own peak; ru_maxrss can carry the parent's peak across fork + exec
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"rows": rows, "peak_rss_mb": peak / 1024}))
"""


def section_memory(quick: bool) -> list[dict]:
    dim, positions = 4096, 100
    counts = [100, 400] if quick else [250, 1000, 2000]
    return [
        {"snapshots": n, "positions": positions, "dim": dim, **_run_script(_MEMORY, str(n), str(positions), str(dim))}
        for n in counts
    ]


# ------------------------------------------------------------------ report


def _md_table(rows: list[dict], columns: list[str], fmt: dict[str, str] | None = None) -> str:
    fmt = fmt or {}
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" for _ in columns) + "|"]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            cells.append(format(v, fmt.get(c, ".3g")) if isinstance(v, float) else str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", choices=["search", "large", "training", "projection", "memory"])
    parser.add_argument("--render", action="store_true", help="rewrite results.md from results.json, measure nothing")
    args = parser.parse_args()
    if args.render:
        write_reports(json.loads((HERE / "results.json").read_text()))
        return
    sections = args.only or ["search", "large", "training", "projection", "memory"]
    results: dict = {
        "machine": {
            "cpus": THREADS,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "faiss": faiss.__version__,
            "quick": args.quick,
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
    }
    previous = HERE / "results.json"
    if args.only and previous.is_file():  # a partial run updates its sections and keeps the others
        kept = json.loads(previous.read_text())
        results = {**{k: v for k, v in kept.items() if k != "machine"}, **results}
        results["machine"]["sections_updated"] = sorted(args.only)
    runners = {
        "search": section_search,
        "large": section_large_vocab,
        "training": section_training,
        "projection": section_projection,
        "memory": section_memory,
    }
    for name in sections:
        t = time.perf_counter()
        print(f"== {name} ...", flush=True)
        results[name] = runners[name](args.quick)
        print(json.dumps(results[name], indent=1, default=float), flush=True)
        print(f"   ({time.perf_counter() - t:.0f} s)", flush=True)
    write_reports(results)


def write_reports(results: dict) -> None:
    md = [
        f"# probe benchmarks\n\n{'Quick' if results['machine']['quick'] else 'Full'} run, "
        f"{results['machine']['date']}, {results['machine']['cpus']} threads, torch {results['machine']['torch']}, "
        f"faiss {results['machine']['faiss']}. Reproduce with `python bench/run.py"
        f"{' --quick' if results['machine']['quick'] else ''}`.\n",
        "Also measured by their own scripts: where a training run's time goes, before and after length-bucketed "
        "evaluation ([train_eval.md](train_eval.md), `python bench/train_eval.py`); what `ProbeCallback` adds to a"
        " Trainer step ([callback.md](callback.md), `python bench/callback.py`); the cost of `probe explain`'s "
        "readings ([explain.md](explain.md), `python bench/explain.py`); `probe explain`'s default against the "
        "estimate it prints ([explain_default.md](explain_default.md), `python bench/explain_default.py`); "
        "dashboard reruns and the first page ([dashboard.md](dashboard.md), `python bench/dashboard.py --runs "
        "DIR`); a new user's first `probe dashboard` on an empty folder and cache "
        "([dashboard_fresh.md](dashboard_fresh.md), `python bench/dashboard.py --fresh`); the hard-prompt "
        "estimates against the time taken ([harden_estimate.md](harden_estimate.md), `python "
        "bench/harden_estimate.py --run RUN`); PEZ against the exact search "
        "([harden_search.md](harden_search.md)), and by hard-prompt length 20/40/80 "
        "([harden_search_lengths.md](harden_search_lengths.md)); a prefix read per layer "
        "([prefix_layers.md](prefix_layers.md)); "
        "the free-text target objective ([target_objective.md](target_objective.md)); PEFT's P-tuning and prefix "
        "`SEQ_CLS` prompts trained on AG News and read by probe ([peft_seq_cls.md](peft_seq_cls.md), `python "
        "bench/peft_seq_cls.py --data ../shared/data/ag_news.csv`).\n",
    ]
    if "search" in results:
        md += [
            "## Neighbour search for drift (exact, k=10)\n",
            "probe's path (`VocabIndex.search`, FAISS `IndexFlatIP`) against torch brute force (matmul + topk in "
            "4096-query batches) and the machine's sgemm for the same FLOPs (the best of one matmul and "
            "cache-sized blocks), all in one process.\n",
            _md_table(
                results["search"],
                [
                    "case",
                    "vocab",
                    "dim",
                    "queries",
                    "probe_qps",
                    "probe_gflops",
                    "torch_gflops",
                    "sgemm_gflops",
                    "ratio_to_sgemm",
                    "speedup_vs_torch",
                ],
                {"ratio_to_sgemm": ".2f", "speedup_vs_torch": ".2f"},
            ),
            "",
        ]
    if "large" in results:
        md += [
            "## Large vocabularies: exact against approximate\n",
            "Queries are vocabulary rows plus noise (as trained prompts are). Exact flat search stays the "
            "default; an approximate index would be labelled as such in every report.\n",
            _md_table(results["large"], ["index", "vocab", "dim", "recall_at_10", "qps", "build_s", "memory_mb"]),
            "",
        ]
    if "training" in results:
        t = results["training"]
        md += [
            "## Training overhead\n",
            f"probe's loop (snapshots every 10 steps, metrics every step, fsynced) against a plain PEFT "
            f"prompt-tuning loop, same model, data, batch and optimizer, {t['steps']} steps, {t['rounds']} "
            "interleaved rounds, median step time (evaluation excluded from both).\n",
            _md_table([t], ["plain_peft_step_s", "probe_step_s", "ratio"], {"ratio": ".3f"}),
            "",
        ]
    if "projection" in results:
        md += ["## Projection\n", _md_table([results["projection"]], list(results["projection"])), ""]
    if "memory" in results:
        md += [
            "## Memory of drift over a long run\n",
            "Synthetic snapshots streamed through `drift_frames` (64 per batched search); peak RSS of the process.\n",
            _md_table(results["memory"], ["snapshots", "positions", "dim", "rows", "peak_rss_mb"]),
            "",
        ]
    md += [targets(results)]
    (HERE / "results.md").write_text("\n".join(md))
    (HERE / "results.json").write_text(json.dumps(results, indent=2, default=float))
    print("\n".join(md))


def targets(results: dict) -> str:
    lines = ["## Targets\n", "| target | measured | met |", "|---|---|---|"]
    notes: list[str] = []
    if "search" in results:
        for r in results["search"]:
            lines.append(
                f"| search >= 80% of sgemm ({r['case']}) | {r['ratio_to_sgemm']:.0%} | "
                f"{'yes' if r['ratio_to_sgemm'] >= 0.8 else 'no'} |"
            )
            lines.append(
                f"| search >= 1.3x torch ({r['case']}) | {r['speedup_vs_torch']:.2f}x | "
                f"{'yes' if r['speedup_vs_torch'] >= 1.3 else 'no'} |"
            )
            if r["speedup_vs_torch"] < 1.3:
                torch_share = r["torch_gflops"] / r["sgemm_gflops"]
                notes.append(
                    f"- {r['case']}: torch brute force itself runs at {torch_share:.0%} of the measured sgemm rate "
                    f"(the matmul dominates its topk at this size), so beating it by 1.3x would need "
                    f"{1.3 * torch_share:.0%} of the measured sgemm rate; probe's path reached "
                    f"{r['ratio_to_sgemm']:.0%}. "
                    "Missed: both paths are bound by the same matrix product here, and probe's is already at the "
                    "sgemm rate."
                )
    if "training" in results:
        r = results["training"]["ratio"]
        lines.append(f"| training step <= 1.05x plain PEFT | {r:.3f}x | {'yes' if r <= 1.05 else 'no'} |")
    if "projection" in results:
        p = results["projection"]
        if "cached_projection_load_s" in p:
            lines.append(
                f"| cached projection of the demo runs < 1 s | {p['cached_projection_load_s']:.2f} s | "
                f"{'yes' if p['cached_projection_load_s'] < 1 else 'no'} |"
            )
        if "dashboard_rerun_s" in p:
            worst = max(p["dashboard_rerun_s"], p["dashboard_rerun_k_change_s"])
            lines.append(f"| dashboard rerun on the demo runs < 1 s | {worst:.2f} s | {'yes' if worst < 1 else 'no'} |")
        lines.append(
            f"| cold UMAP fit < 60 s ({p['n_vocab']} tokens) | {p['cold_fit_s']:.1f} s | "
            f"{'yes' if p['cold_fit_s'] < 60 else 'no'} |"
        )
    if "memory" in results:
        peaks = [r["peak_rss_mb"] for r in results["memory"]]
        flat = max(peaks) - min(peaks) < 0.1 * min(peaks) + 50
        lines.append(
            f"| drift memory bounded as snapshots grow | {', '.join(f'{p:.0f}' for p in peaks)} MB | "
            f"{'yes' if flat else 'no'} |"
        )
    if notes:
        lines += ["", "Targets missed, and why:", "", *notes]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
