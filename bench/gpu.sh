#!/usr/bin/env bash
# GPU check for when a CUDA machine is lent: under 5 minutes. Neighbour search on the GPU with torch
# (matmul + topk; faiss-gpu wheels lag behind new GPUs), against the GPU's own sgemm for the same FLOPs, and
# a short training run with the model on CUDA. Prints a table; writes $OUT/gpu.json when $OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import json, os, time
import numpy as np
import torch

assert torch.cuda.is_available(), "no CUDA device"
dev = torch.device("cuda")
name = torch.cuda.get_device_name(0)
rows = []
for v, d, n in [(30_522, 384, 20_000), (128_000, 4096, 20_000), (256_000, 8192, 10_000)]:
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(v, d, device=dev, generator=g), dim=1)
    q = torch.nn.functional.normalize(torch.randn(n, d, device=dev, generator=g), dim=1)
    flops = 2.0 * v * d * n

    def search():
        for s in range(0, n, 4096):
            torch.topk(q[s:s + 4096] @ x.T, 10, dim=1)

    def sgemm():
        for s in range(0, n, 4096):
            q[s:s + 4096] @ x.T

    from probe.core.index import VocabIndex
    probe_index = VocabIndex(x.cpu().numpy(), backend="torch", device="cuda") if v * d <= 128_000 * 4096 else None
    q_host = q.cpu().numpy()

    def probe_path():
        probe_index.search(q_host, 10)

    for f in (search, sgemm):
        f(); torch.cuda.synchronize()
    times = {}
    cases = [("search", search), ("sgemm", sgemm)] + ([("probe", probe_path)] if probe_index else [])
    for label, f in cases:
        best = 1e9
        for _ in range(3):
            t = time.perf_counter(); f(); torch.cuda.synchronize(); best = min(best, time.perf_counter() - t)
        times[label] = best
    rows.append({"vocab": v, "dim": d, "queries": n, "search_tflops": flops / times["search"] / 1e12,
                 "sgemm_tflops": flops / times["sgemm"] / 1e12, "ratio": times["sgemm"] / times["search"],
                 "probe_tflops": flops / times["probe"] / 1e12 if "probe" in times else float("nan")})
    del x, q
    torch.cuda.empty_cache()

from probe import TrainConfig, train
import tempfile
t = time.perf_counter()
with tempfile.TemporaryDirectory() as d:
    run = train(TrainConfig(init="class-label", steps=150), d + "/run", progress=False)
    final = dict(run.manifest.final)
train_s = time.perf_counter() - t
print(f"device: {name}")
print("| vocab | dim | queries | torch search TFLOP/s | probe VocabIndex(cuda) TFLOP/s | sgemm TFLOP/s | search/sgemm |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['vocab']} | {r['dim']} | {r['queries']} | {r['search_tflops']:.1f} | {r['probe_tflops']:.1f} | "
          f"{r['sgemm_tflops']:.1f} | {r['ratio']:.2f} |")
print(f"default demo training on CUDA: 150 steps in {train_s:.1f} s, accuracy {final['soft_accuracy']:.3f}")
if os.environ.get("OUT"):
    with open(os.path.join(os.environ["OUT"], "gpu.json"), "w") as f:
        json.dump({"device": name, "search": rows, "train_s": train_s, "final": final}, f, indent=2)
PY
