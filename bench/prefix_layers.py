"""The cost of reading a prefix per layer (issue 29's target: under 60 s cold on the bundled encoder), on this
machine.

    python bench/prefix_layers.py [--positions 10] [--k 5]

Builds a PEFT PREFIX_TUNING adapter on the bundled all-MiniLM-L6-v2 (FEATURE_EXTRACTION, seeded random prefix),
saves it, and times in one process with an empty probe cache: loading the model; reading the adapter; the cold
per-layer reading (every searchable token's key and value at every layer, the control texts, then per layer the
two FAISS indexes, their manifold references and the prefix's and the control's search); then the same reading
warm (the reference read back from the cache). Prints a markdown table and writes bench/prefix_layers.md.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=10, help="prefix positions (default 10)")
    parser.add_argument("--k", type=int, default=5, help="neighbours per position (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PROBE_CACHE_DIR"] = str(Path(tmp) / "cache")
        sys.path.insert(0, str(ROOT))
        import torch
        from peft import PrefixTuningConfig, get_peft_model
        from transformers import AutoModel

        from probe.core.models import bundled_model_path, load_model
        from probe.core.threads import configure_threads
        from probe.formats.prefix import load_prefix
        from probe.readings.prefix import prefix_layers

        threads = configure_threads()
        torch.manual_seed(0)
        base = AutoModel.from_pretrained(bundled_model_path())
        config = PrefixTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=args.positions)
        get_peft_model(base, config).save_pretrained(Path(tmp) / "prefix")

        rows: list[tuple[str, float]] = []
        started = time.perf_counter()
        model = load_model("default", device="cpu")
        rows.append(("load the model", time.perf_counter() - started))
        started = time.perf_counter()
        prefix = load_prefix(Path(tmp) / "prefix", model_config=model.model.config)
        rows.append(("read the adapter", time.perf_counter() - started))
        started = time.perf_counter()
        cold = prefix_layers(prefix, model, k=args.k)
        cold_total = time.perf_counter() - started
        started = time.perf_counter()
        warm = prefix_layers(prefix, model, k=args.k)
        warm_total = time.perf_counter() - started
        # calibration: bench/explain.md's layer-lens build (10,000 tokens between [CLS] and [SEP], 7 layers), a
        # forward pass of the same shape, timed here; a busy machine shows in it
        from probe.core.index import VocabIndex
        from probe.readings.explain.lens import contextual_vocabulary

        started = time.perf_counter()
        contextual_vocabulary(model, VocabIndex.for_model(model), top_n=10_000, use_cache=False)
        lens = time.perf_counter() - started
        load = os.getloadavg()[0]

    lines = [
        "# The cost of reading a prefix per layer",
        "",
        f"Bundled all-MiniLM-L6-v2 (6 layers x 12 heads x 32), a {prefix.length}-position PREFIX_TUNING adapter, "
        f"k={args.k}, {cold.searchable_tokens} searchable tokens, {threads} threads, empty probe cache. Wall seconds;"
        " cold = nothing cached, warm = the reference keys and values read back from the cache.",
        "",
        "| step | cold s | warm s |",
        "|---|---:|---:|",
        *(f"| {name} | {seconds:.2f} |  |" for name, seconds in rows),
        *(
            f"| {name} | {cold.seconds[name]:.2f} | {warm.seconds.get(name, float('nan')):.2f} |"
            for name in cold.seconds
        ),
        f"| **per-layer reading, all 6 layers (target < 60 s cold)** | **{cold_total:.2f}** | **{warm_total:.2f}** |",
        "",
        f"Calibration, same process: the layer-lens vocabulary build (10,000 tokens, one pass each) took {lens:.2f} s"
        f" here (bench/explain.md: 3.64 s); 1-minute load average {load:.1f} on {os.cpu_count()} cores at the end.",
        "",
        "reference: every searchable token's key and value at every layer (one pass of the token alone between "
        "[CLS] and [SEP]); control texts: 64 bundled texts through the model; layer N: its key and value FAISS "
        "indexes, each with a 2,000-token manifold reference, the prefix's search and 200 control positions'.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    (HERE / "prefix_layers.md").write_text(text)


if __name__ == "__main__":
    main()
