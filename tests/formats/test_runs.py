"""probe.formats.discovery: the run folder round-trips, survives torn writes, and refuses corrupt manifests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probe.formats.discovery import find_runs, load_run
from probe.formats.run import is_run_folder, snapshot_name
from probe.formats.writer import RunWriter

MANIFEST = {"model": "m", "init": "sampled-vocab", "length": 3, "seed": 1}


def test_run__round_trip(tmp_path):
    writer = RunWriter(tmp_path / "r", MANIFEST)
    vectors = {s: np.random.default_rng(s).normal(size=(3, 8)).astype(np.float32) for s in (0, 5, 10)}
    for s, v in vectors.items():
        writer.write_snapshot(s, v)
    writer.log("train", step=1, loss=0.5, lr=0.1)
    writer.log("eval", step=10, accuracy=0.75, discrete_accuracy=0.5)
    writer.update(status="finished")
    run = load_run(tmp_path / "r")
    assert run.steps == [0, 5, 10] and run.status == "finished" and run.manifest.seed == 1
    for s, v in vectors.items():
        np.testing.assert_array_equal(run.snapshot(s).vectors, v)
    assert run.latest_prompt().step == 10
    assert run.metrics()["loss"].tolist() == [0.5]
    assert run.evaluations()["soft_accuracy"].tolist() == [0.75]  # an older line's key, read under its one name
    assert [r.name for r in find_runs(tmp_path)] == ["r"]


def test_run__torn_metrics_line_and_temp_files_are_ignored(tmp_path):
    writer = RunWriter(tmp_path / "r", MANIFEST)
    writer.write_snapshot(0, np.ones((3, 8), np.float32))
    writer.log("train", step=1, loss=1.0, lr=0.1)
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "step": 2, "lo')  # killed mid-write
    (tmp_path / "r" / "snapshots" / ".step-00000005.safetensors.x.tmp").write_bytes(b"partial")
    run = load_run(tmp_path / "r")
    assert run.steps == [0]
    assert len(run.metrics()) == 1


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        ("{not json", ValueError, "is corrupt"),
        ("[1, 2]", ValueError, "expected an object"),
        (json.dumps({"format": 1}), ValueError, "lacks"),
        (json.dumps({**MANIFEST, "format": 99, "status": "running"}), ValueError, "has format 99"),
    ],
)
def test_load_run__bad_manifests(tmp_path, content, error, message):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(error, match=message):
        load_run(tmp_path)


def test_load_run__missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(ValueError, match="not a run folder in any layout probe reads. Accepted layouts: probe: "):
        load_run(tmp_path)
    assert not is_run_folder(tmp_path)
    (tmp_path / "prompt.npy").write_bytes(b"")
    with pytest.raises(
        FileNotFoundError, match="is a file; a run is a folder .*read one prompt file with probe report"
    ):
        load_run(tmp_path / "prompt.npy")


def test_run__missing_and_corrupt_snapshots(tmp_path):
    writer = RunWriter(tmp_path / "r", MANIFEST)
    writer.write_snapshot(0, np.ones((3, 8), np.float32))
    (tmp_path / "r" / "snapshots" / snapshot_name(10)).write_bytes(b"garbage")
    run = load_run(tmp_path / "r")
    with pytest.raises(ValueError, match="no snapshot at step 7"):
        run.snapshot(7)
    with pytest.raises(ValueError, match="unreadable"):
        run.snapshot(10)


def test_run__no_snapshots_yet(tmp_path):
    RunWriter(tmp_path / "r", MANIFEST)
    with pytest.raises(ValueError, match="no snapshots yet"):
        load_run(tmp_path / "r").latest_prompt()


def test_run_writer__refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        RunWriter(tmp_path / "f", MANIFEST)


def test_trainer_folder__a_log_history_of_the_wrong_types_reads_what_is_well_formed(tmp_path):
    import json

    from probe.formats.layouts import ForeignRun
    from probe.formats.manifest import Manifest

    history = [
        {"step": 1, "loss": 0.5, "learning_rate": 0.1},
        {"step": "2", "loss": 0.4},  # a string step
        {"step": 2, "loss": "low", "eval_accuracy": [1]},  # a string loss, a list eval
        "not an entry",
        {"step": 3, "loss": 0.3, "learning_rate": "fast", "eval_accuracy": 0.75},
    ]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": history, "global_step": 3}))
    run = ForeignRun(tmp_path, Manifest(model=None, init="unknown", length=1, seed=None), layout="trainer")
    metrics = run.metrics()  # it raised a TypeError (and the dashboard with it)
    assert metrics["step"].tolist() == [1, 3] and metrics["loss"].tolist() == [0.5, 0.3]
    assert metrics["lr"].tolist()[0] == 0.1 and metrics["lr"].isna().tolist()[1]
    assert run.evaluations()["accuracy"].tolist() == [0.75]
