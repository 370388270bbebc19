"""probe.dashboard.views: the tables the dashboard shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probe import load_run, nearest_tokens
from probe.dashboard.views import position_table, search_positions, snapshot_at, trajectories
from probe.readings.projection import MapConfig, fit_map


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


def _pickle_bomb(marker):
    import pickle

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    return pickle.dumps({"prompt": Bomb()})


def test_read_upload__tensor_files_and_a_zipped_adapter(tmp_path, default_model):
    import io
    import zipfile

    import torch
    from safetensors.numpy import save

    from probe.dashboard.uploads import read_upload
    from probe.tasks.kinds import wrap_with_prompt

    e = default_model.embeddings_numpy()[:3]
    (prompt,) = read_upload("mine.safetensors", save({"prompt": e}))
    np.testing.assert_array_equal(prompt.vectors, e)
    assert prompt.source == "upload: mine.safetensors"
    buffer = io.BytesIO()
    np.save(buffer, e)
    np.testing.assert_array_equal(read_upload("p.npy", buffer.getvalue())[0].vectors, e)
    wrap_with_prompt(default_model, e).save_pretrained(tmp_path / "adapter")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        for f in (tmp_path / "adapter").iterdir():
            z.write(f, f"my-adapter/{f.name}")
    np.testing.assert_array_equal(read_upload("adapter.zip", zipped.getvalue())[0].vectors, e)
    torch_bytes = io.BytesIO()
    torch.save({"prompt": torch.from_numpy(e)}, torch_bytes)
    np.testing.assert_array_equal(read_upload("p.pt", torch_bytes.getvalue())[0].vectors, e)


def test_read_upload__refuses_pickled_code_unsafe_zips_and_size(tmp_path):
    import io
    import zipfile

    from probe.dashboard.uploads import read_upload, under_folder

    marker = tmp_path / "pwned"
    with pytest.raises(ValueError, match="'evil.pt' holds Python objects beyond tensors; probe refuses to unpickle"):
        read_upload("evil.pt", _pickle_bomb(marker))
    assert not marker.exists()  # the pickle's code never ran
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../escape.txt", "x")
    with pytest.raises(ValueError, match="unsafe path"):
        read_upload("evil.zip", evil.getvalue())
    with pytest.raises(ValueError, match="the limit is 1 MB"):
        read_upload("big.npy", b"0" * (2 * 2**20), max_mb=1)
    with pytest.raises(ValueError, match="expected one of"):
        read_upload("notes.txt", b"hello")
    with pytest.raises(ValueError, match="not a readable zip"):
        read_upload("broken.zip", b"PK no")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "p.npy").write_bytes(b"")
    assert under_folder(tmp_path / "runs" / "p.npy", tmp_path / "runs").name == "p.npy"
    with pytest.raises(ValueError, match="outside the runs folder"):
        under_folder(tmp_path / "runs" / ".." / "pwned", tmp_path / "runs")


def test_landmarks__one_word_per_dense_cell_and_every_label(default_model, default_index, tmp_path):
    from probe.core.tokens import frequency_ranks
    from probe.dashboard.views import landmarks, map_tokens

    vmap = fit_map(default_model, default_index, MapConfig(method="pca", n_vocab=3000), cache_dir=tmp_path)
    tokens = map_tokens(vmap, default_model.vocabulary.display)
    words = landmarks(tokens, frequency_ranks(default_model.vocabulary), labels=["science", "music"], cells=10)
    plain = words[~words["is_label"]]
    assert 20 <= len(plain) <= 100 and plain["token"].str.fullmatch(r"[A-Za-z]{3,}").all()
    assert set(words[words["is_label"]]["token"]) == {"science", "music"}
    assert words["token"].is_unique


def test_label_spots__labels_avoid_each_other_when_they_can():
    from probe.plots.maps import label_spots

    x, y = np.array([0.0, 0.01, 1.0]), np.array([0.0, 0.0, 1.0])
    spots = label_spots(x, y, ["alpha", "beta", "gamma"])
    assert spots[0] != spots[1]  # two labels on nearly the same point go to different sides
    assert spots[2] == ("top right", 0.0, 0.0)  # a lone point keeps the first choice, on the point


def test_label_spots__optional_words_that_would_cover_another_are_not_written():
    from probe.plots.maps import CHAR, LINE, _box, _overlap, label_spots

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=300), rng.normal(size=300)  # a crowded map: most words cannot all fit
    texts = [f"word{i}" for i in range(300)]
    spots = label_spots(x, y, texts, required=5)
    assert all(spot is not None for spot in spots[:5])  # the required words are always written
    written = [i for i, spot in enumerate(spots) if spot is not None]
    assert 5 < len(written) < 300  # some optional words fit, not all
    width, height = float(np.ptp(x)), float(np.ptp(y))
    at = {i: spots[i] for i in written}
    boxes = [
        _box(x[i] + at[i][1], y[i] + at[i][2], len(texts[i]) * CHAR * width, LINE * height, at[i][0]) for i in written
    ]
    clashes = [(a, b) for a in range(len(boxes)) for b in range(a + 1, len(boxes)) if _overlap(boxes[a], boxes[b])]
    assert clashes == [] or all(b < 5 for _, b in clashes)  # only required words may ever touch each other


def test_prompt_map__labels_are_svg_text_traces(demo_runs, default_model, default_index, tmp_path):
    from probe.dashboard.views import map_tokens
    from probe.plots.maps import prompt_map

    vmap = fit_map(default_model, default_index, MapConfig(method="pca", n_vocab=500), cache_dir=tmp_path)
    runs = [load_run(demo_runs / "class-label")]
    paths = trajectories(vmap, runs, default_index, display=default_model.vocabulary.display, cache_dir=tmp_path)
    words = pd.DataFrame({"token": ["joy", "river"], "x": [0.0, 1.0], "y": [0.0, 1.0], "is_label": [True, False]})
    fig = prompt_map(map_tokens(vmap, default_model.vocabulary.display), paths, step=10, landmarks=words)
    text_traces = {t.name: t for t in fig.data if t.type == "scatter" and t.mode == "text"}
    assert set(text_traces) == {"class labels", "landmark words", "top-1 tokens"}
    assert (
        list(text_traces["top-1 tokens"].text)
        == paths[paths["step"] == 10]["neighbours"].str.split(", ").str[0].tolist()
    )
    bare = prompt_map(map_tokens(vmap, default_model.vocabulary.display), paths, step=10, label_positions=False)
    assert not [t for t in bare.data if getattr(t, "mode", None) == "text"]


def test_prompt_map__outliers_are_left_out_of_the_view_and_said_so():
    from probe.plots.maps import prompt_map

    rng = np.random.default_rng(0)
    cloud = pd.DataFrame(
        {"token": [f"t{i}" for i in range(1000)], "x": rng.normal(size=1000), "y": rng.normal(size=1000)}
    )
    cloud.loc[:2, "x"] = 500.0  # a far streak of three tokens
    paths = pd.DataFrame(
        {"run": ["a"], "init": ["a"], "step": [0], "position": [0], "x": [3.5], "y": [0.0]}
        | {"neighbours": ["t9, t8"], "top1_cos": [0.5], "on_manifold": [True]}
    )
    fig = prompt_map(cloud, paths)
    x0, x1 = fig.layout.xaxis.range
    assert x1 < 500 and x0 <= 3.5 <= x1  # the streak is out, the prompt's position is in
    assert any("3 outlying tokens" in a.text for a in fig.layout.annotations)


def test_prompt_map__a_word_written_at_the_right_edge_fits_in_the_view():
    from probe.plots.maps import CHAR, _view, prompt_map

    rng = np.random.default_rng(1)
    cloud = pd.DataFrame(
        {"token": [f"t{i}" for i in range(1000)], "x": rng.normal(size=1000), "y": rng.normal(size=1000)}
    )
    right = float(cloud["x"].max())
    word = "extraordinarilylongtoken"
    paths = pd.DataFrame(
        {"run": ["a"], "init": ["a"], "step": [0], "position": [0], "x": [right], "y": [0.0]}
        | {"neighbours": [word], "top1_cos": [0.5], "on_manifold": [True]}
    )
    fig = prompt_map(cloud, paths)
    (top,) = [t for t in fig.data if t.name == "top-1 tokens"]
    x0, x1 = fig.layout.xaxis.range
    v0, v1, _, _ = _view(cloud, np.array([right]), np.array([0.0]))
    width = len(word) * CHAR * (v1 - v0)  # the placement's own measure of the word, in the view it was placed for
    side = top.textposition[0]
    left = float(top.x[0]) - (width if "left" in side else width / 2 if "center" in side else 0)
    assert x0 <= left and left + width <= x1 + 1e-9, (left, left + width, x0, x1)


def test_tables__every_column_the_main_tables_show_has_help(demo_runs, default_model, default_index):
    from probe.dashboard.widgets import COLUMN_HELP
    from probe.experiments.demo import comparison_table
    from probe.readings.drift import summarize_run

    runs = [load_run(demo_runs / name) for name in ("class-label", "random-uniform")]
    report = nearest_tokens(runs[0].latest_prompt(), default_model, k=5, labels=runs[0].labels, index=default_index)
    shown = [
        comparison_table(runs, default_model, default_index),
        position_table(report),
        summarize_run(runs[0], default_model, index=default_index).to_dataframe(),
    ]
    missing = {c for frame in shown for c in frame.columns if c not in COLUMN_HELP}
    assert missing == set()


def test_map_job__a_fit_over_the_server_s_budget_ends_in_its_one_line_and_fits_nothing(monkeypatch):
    from probe.dashboard.state import MapJob

    monkeypatch.setenv("PROBE_BUDGET_MINUTES", "0.00001")  # as `probe dashboard --budget-minutes` sets it
    job = MapJob("default", MapConfig(n_vocab=1234), ())  # a sample no other test fits: never cached
    job.thread.join(timeout=120)
    assert job.done and job.result is None
    assert job.error is not None and job.error.startswith("ValueError: the UMAP map of 1,234 tokens would take about ")
    assert "($PROBE_BUDGET_MINUTES); raise it with --budget-minutes 1, or fit it on fewer tokens" in job.error
