"""The vocabulary map's fit: its estimate (probe.readings.map_cost) beside the time it took, cold and warm.

    python bench/map_cost.py [--sizes 3000 10000 12000]

The first fit runs with an empty Numba cache (a fresh temporary ``NUMBA_CACHE_DIR``: UMAP compiles), the others
warm. Each row: the points, UMAP's epochs, the estimate printed before the fit, the seconds the fit took, and the
rate per point, neighbour and epoch that ``EDGE_EPOCH_SECONDS`` is read from. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 3000, 10000, 12000])
    args = parser.parse_args()
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-")  # cold: UMAP compiles on the first fit
    from probe.core.index import VocabIndex, normalize_rows
    from probe.core.models import load_model
    from probe.readings.map_cost import compiled, map_bytes, map_seconds
    from probe.readings.projection import MapConfig, fit_map, sample_ids

    model = load_model("default")
    index = VocabIndex.for_model(model)
    cache = tempfile.mkdtemp(prefix="maps-")
    print("| points | epochs | numba | estimate_s | fit_s | estimate / fit | GB estimated | s per edge-epoch |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        config = MapConfig(n_vocab=n)
        x = normalize_rows(model.embeddings_numpy()[sample_ids(model, index, n)])
        state = "warm" if compiled() else "cold"
        estimate = map_seconds(x, config)
        started = time.perf_counter()
        fit_map(model, index, config, cache_dir=cache, use_cache=False)
        took = time.perf_counter() - started
        epochs = 500 if n <= 10_000 else 200
        rate = took / (n * config.n_neighbors * epochs)
        gb = map_bytes(n, x.shape[1], config) / 1e9
        shown = f"{estimate:.1f} | {took:.1f} | {estimate / took:.2f} | {gb:.3f} | {rate:.2e}"
        print(f"| {n} | {epochs} | {state} | {shown} |")


if __name__ == "__main__":
    main()
