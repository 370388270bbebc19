"""The vocabulary map's fit: its estimate (probe.readings.map_cost) beside the time it took, in the three states
compilation can be in.

    python bench/map_cost.py [--sizes 3000 10000 12000]

Each size is fitted in a fresh process three times over: with an empty Numba cache (a new ``NUMBA_CACHE_DIR``:
UMAP compiles everything), again in a fresh process with that cache filled (UMAP compiles what it does not cache),
and a second time in that process (nothing left to compile). Each row: the points, UMAP's epochs, the state, the
estimate printed before the fit, the seconds the fit took, their ratio, the memory estimate, and the warm rate per
point, neighbour and epoch that ``EDGE_EPOCH_SECONDS`` is read from. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def fit(n: int, repeats: int) -> list[dict[str, float]]:
    """In this process: ``repeats`` fits of the default model's map on ``n`` tokens, each estimated first."""
    from probe.core.index import VocabIndex, normalize_rows
    from probe.core.models import load_model
    from probe.readings.map_cost import compile_seconds, map_bytes, map_seconds
    from probe.readings.projection import MapConfig, fit_map, sample_ids

    model = load_model("default")
    index = VocabIndex.for_model(model)
    config = MapConfig(n_vocab=n)
    x = normalize_rows(model.embeddings_numpy()[sample_ids(model, index, n)])
    out = []
    for _ in range(repeats):
        compiling, estimate = compile_seconds(), map_seconds(x, config)
        started = time.perf_counter()
        fit_map(model, index, config, use_cache=False)
        took = time.perf_counter() - started
        out.append(
            {"compile": compiling, "estimate": estimate, "took": took, "gb": map_bytes(n, x.shape[1], config) / 1e9}
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 10000, 12000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: fit this size, print JSON
    parser.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(fit(args.one, args.repeats)))
        return
    print("| points | epochs | compiling | estimate_s | fit_s | estimate / fit | GB estimated | s per edge-epoch |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        env = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="numba-"))
        rows = []
        for repeats in (1, 2):  # a fresh process on an empty cache; then a fresh one on the filled cache, twice
            child = [sys.executable, __file__, "--one", str(n), "--repeats", str(repeats)]
            done = subprocess.run(child, env=env, capture_output=True, text=True, check=True)
            rows += json.loads(done.stdout.strip().splitlines()[-1])
        epochs = 500 if n <= 10_000 else 200
        for state, row in zip(("empty cache", "cache filled, new process", "same process again"), rows, strict=True):
            rate = row["took"] / (n * 15 * epochs)
            shown = f"{row['estimate']:.1f} | {row['took']:.1f} | {row['estimate'] / row['took']:.2f} | {row['gb']:.3f}"
            print(f"| {n} | {epochs} | {state} (+{row['compile']:.0f} s) | {shown} | {rate:.2e} |", flush=True)


if __name__ == "__main__":
    main()
