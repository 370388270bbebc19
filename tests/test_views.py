"""probe.views: the tables the dashboard shows."""

from __future__ import annotations

import numpy as np

from probe import load_run, nearest_tokens
from probe.projection import MapConfig, fit_map
from probe.views import position_table, search_positions, snapshot_at, trajectories


def test_snapshot_at__last_snapshot_not_after_step(demo_runs):
    run = load_run(demo_runs / "class-label")
    assert snapshot_at(run, 7) == 0 and snapshot_at(run, 10) == 10 and snapshot_at(run, 999) == 10


def test_position_table_and_search(default_model, default_index):
    ids = default_model.tokenizer.convert_tokens_to_ids(["science", "fear", "music"])
    report = nearest_tokens(default_model.embeddings_numpy()[ids], default_model, k=5, index=default_index)
    table = position_table(report)
    assert table["top1"].tolist() == ["science", "fear", "music"]
    assert search_positions(report, "FEAR") == [1]
    assert search_positions(report, "") == [0, 1, 2]


def test_trajectories__every_snapshot_placed_and_cached(demo_runs, default_model, default_index, tmp_path):
    vmap = fit_map(default_model, default_index, MapConfig(method="pca", n_vocab=500), cache_dir=tmp_path)
    runs = [load_run(demo_runs / name) for name in ("class-label", "random-uniform")]
    paths = trajectories(vmap, runs, default_index, display=default_model.vocabulary.display, cache_dir=tmp_path)
    assert len(paths) == 2 * 2 * 5
    assert not paths[paths["init"] == "random-uniform"]["on_manifold"].any()  # the paper's random init: far away
    again = trajectories(vmap, runs, default_index, display=default_model.vocabulary.display, cache_dir=tmp_path)
    np.testing.assert_array_equal(paths[["x", "y"]].to_numpy(), again[["x", "y"]].to_numpy())
    cached = sorted((tmp_path / "coords").glob("*.safetensors"))
    assert len(cached) == 2 and len(list((tmp_path / "coords").glob("*.json"))) == 2
    for f in cached:  # a damaged cache is never trusted: the coordinates are placed afresh
        f.write_bytes(b"not safetensors")
    third = trajectories(vmap, runs, default_index, display=default_model.vocabulary.display, cache_dir=tmp_path)
    np.testing.assert_array_equal(paths[["x", "y"]].to_numpy(), third[["x", "y"]].to_numpy())
