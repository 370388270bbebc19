"""probe.experiments.frontier: a sweep over the faithfulness weight writes its report, resumes, and gives the same
table wherever its runs train (in this process or on a local Dask cluster)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from probe.experiments.frontier import FrontierConfig, frontier, render
from probe.experiments.frontier.record import FRONTIER_JSON, REQUIRED, read_frontier

TINY = {"weights": (0.0, 1.0), "seeds": (0,), "steps": 4, "test_size": 40, "bootstrap": 100, "length": 4}


def _table(report):
    """What must not depend on where the runs trained: every figure of every run, by run name."""
    return {r["run"].rsplit("/", 1)[-1]: {k: v for k, v in r.items() if k != "run"} for r in report.to_dict()["runs"]}


@pytest.fixture(scope="module")
def tiny_frontier(tmp_path_factory, default_model):
    from probe.core.threads import configure_threads

    out = tmp_path_factory.mktemp("frontier")
    configure_threads(1)  # the Dask workers below run one thread each; the same arithmetic gives the same numbers
    try:
        report = frontier(FrontierConfig(**TINY), out, progress=False)
    finally:
        configure_threads(None)
    return out, report


@pytest.mark.slow
def test_frontier__writes_a_report_with_every_required_field(tiny_frontier):
    out, report = tiny_frontier
    data = json.loads((out / FRONTIER_JSON).read_text())
    assert 0.0 < data["zero_shot_accuracy"] < 1.0
    assert [(r["weight"], r["seed"]) for r in data["runs"]] == [(0.0, 0), (1.0, 0)]
    for r in data["runs"]:
        assert set(REQUIRED) <= set(r)
        assert (out / "runs" / r["run"].rsplit("/", 1)[-1] / "manifest.json").is_file()
        low, high = r["agreement_ci"]
        assert low <= r["agreement"] <= high
    assert any(r["pareto"] for r in data["runs"])
    assert read_frontier(out / FRONTIER_JSON).to_dict() == report.to_dict()
    text = (out / "frontier.md").read_text()
    assert text == render(report) and "Against the aim" in text
    html = (out / "frontier.html").read_text()
    assert "zero-shot" in html and "unconstrained" in html


@pytest.mark.slow
def test_frontier__a_second_run_skips_finished_runs(tiny_frontier):
    out, report = tiny_frontier
    manifests = sorted((out / "runs").glob("*/manifest.json"))
    before = [p.stat().st_mtime_ns for p in manifests]
    again = frontier(FrontierConfig(**TINY), out, progress=False)
    assert [p.stat().st_mtime_ns for p in manifests] == before
    assert _table(again) == _table(report)


@pytest.mark.slow
def test_frontier__a_local_dask_cluster_gives_the_same_table(tiny_frontier, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    _, inline = tiny_frontier
    monkeypatch.setenv("PROBE_THREADS", "1")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address.removeprefix("tcp://")
        report = frontier(FrontierConfig(**TINY), tmp_path, executor=f"dask://{address}", progress=False)
    assert _table(report) == _table(inline)


def test_frontier__bad_weights_are_refused_in_one_line():
    with pytest.raises(ValueError, match="faithfulness weight"):
        FrontierConfig(weights=(-0.5,))
    with pytest.raises(ValueError, match="at least one weight"):
        FrontierConfig(weights=())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--weights", "1.5"], "faithfulness weight"),
        (["--executor", "dask://127.0.0.1:9"], "no dask scheduler answers"),
        (["--executor", "threads:2"], "is not known"),
    ],
)
def test_frontier_cli__bad_input_is_one_line_and_writes_nothing(args, expected, tmp_path):
    out = tmp_path / "f"
    done = subprocess.run(
        [sys.executable, "-m", "probe", "frontier", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert not out.exists()


@pytest.mark.slow
def test_explain__a_frontier_folder_starts_from_its_best_reading(tiny_frontier, capsys):
    from probe.cli.explain import Explain

    out, report = tiny_frontier
    best = max(report.runs, key=lambda r: (r["discretised_accuracy"], r["soft_accuracy"]))
    assert Explain._from_frontier(str(out)) == str(out / "runs" / best["run"].rsplit("/", 1)[-1])
    assert "starting from the frontier run" in capsys.readouterr().err
    assert Explain._from_frontier(str(out / "runs" / "lambda0-s0")) == str(out / "runs" / "lambda0-s0")


@pytest.mark.parametrize(
    ("module", "cls", "data", "lacking"),
    [
        ("probe.experiments.frontier.record", "FrontierReport",
         {"zero_shot_accuracy": 0.5, "runs": [{"run": "x"}]}, "weight"),
        ("probe.experiments.wayward.record", "WaywardReport",
         {"free_accuracy": 0.8, "conclusion": "c", "targets": [{"target": "text"}]}, "cost"),
        ("probe.experiments.audit.record", "AuditReport",
         {"runs": [{"run": "x", "share": 0}], "readings": []}, "flip_rate"),
    ],
)  # fmt: skip
def test_reports__an_entry_missing_a_field_is_named_in_one_line(module, cls, data, lacking):
    import importlib

    record = getattr(importlib.import_module(module), cls)
    with pytest.raises(ValueError, match=lacking) as caught:
        record.from_dict(data, source="r.json")
    assert "\n" not in str(caught.value) and "r.json" in str(caught.value)


@pytest.mark.slow
def test_frontier__a_run_interrupted_and_resumed_gives_the_same_report(tmp_path, default_model):
    """A grid run stopped mid-training (its last snapshot and the optimizer's state kept) resumes exactly: the
    report's numbers are those of the uninterrupted grid."""
    from probe.core.threads import configure_threads
    from probe.training.trainer import train

    config = FrontierConfig(**{**TINY, "steps": 6})
    cut = tmp_path / "cut"

    def stop(record) -> None:
        if record.step == 4:
            raise KeyboardInterrupt

    configure_threads(1)  # as the fixture's grid ran
    try:
        again = frontier(config, tmp_path / "whole", progress=False)
        with pytest.raises(KeyboardInterrupt):
            name, first = next(iter(config.run_configs().items()))
            train(first, cut / "runs" / name, model=default_model, progress=False, callbacks=[stop])
        resumed = frontier(config, cut, progress=False)
    finally:
        configure_threads(None)
    assert _table(resumed) == _table(again)


@pytest.mark.slow
def test_grid__ctrl_c_in_the_first_run_stops_the_whole_grid(tmp_path, default_model, monkeypatch):
    from probe.experiments import grid
    from probe.training.trainer import train

    started = []

    def first_interrupted(config, path, model=None, progress=False, overwrite=False):
        started.append(path)

        def stop(record) -> None:
            raise KeyboardInterrupt  # Ctrl-C during the first run's first step

        train(config, path, model=model, progress=False, callbacks=[stop])

    monkeypatch.setattr(grid, "train_one", first_interrupted)
    with pytest.raises(KeyboardInterrupt):
        grid.run_grid(
            FrontierConfig(**{**TINY, "weights": (0.0, 0.5, 1.0)}).run_configs(), tmp_path, model=default_model
        )
    assert len(started) == 1  # the two runs after it never started


@pytest.mark.slow
def test_grid__sigterm_stops_the_workers_too_and_leaves_every_run_resumable(tmp_path):
    """SIGTERM to ``probe frontier --executor processes:2`` stops its workers (a signal to the parent does not reach
    them by itself): none is left training, every run folder's lock is free, and the grid resumes."""
    import os
    import signal
    import time

    import psutil

    from probe.formats.writer import RunLock

    out = tmp_path / "grid"
    options = "--weights 0 1 --seeds 1 --steps 400 --test-size 40 --length 4 --executor processes:2 --no-progress"
    command = [sys.executable, "-m", "probe", "frontier", *options.split(), "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while len(list(out.glob("runs/*/snapshots/step-*.safetensors"))) < 2:  # both workers are training
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.5)
        workers = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 143 and "terminated" in (proc.stderr.read() if proc.stderr else "")
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []
    for run in out.glob("runs/*"):
        lock = RunLock(run)
        lock.acquire()  # free: the grid can be resumed
        lock.release()


def test_frontier_config__weights_that_name_one_run_are_refused():
    with pytest.raises(ValueError, match=r"weights 0.1 and 0.1000001 both name the run 'lambda0.1-s0'"):
        FrontierConfig(weights=(0.1, 0.1000001))
    assert list(FrontierConfig(weights=(0.1, 0.11), seeds=(0,)).run_configs()) == ["lambda0.1-s0", "lambda0.11-s0"]


@pytest.mark.parametrize("peer", ["silent", "garbage"])
def test_grid__a_dask_address_that_never_answers_or_answers_garbage_is_one_line_in_bounded_time(peer, monkeypatch):
    """A peer on 127.0.0.1 that accepts and says nothing, or says garbage, is refused in one line within the
    connect deadline (it held the command past 170 s, or crashed with a MemoryError, before)."""
    import socket
    import threading
    import time

    from probe.experiments import grid

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)  # kept open: the peer never hangs up
            if peer == "garbage":
                conn.sendall(b"\xff" * 64 + b"HTTP/1.1 200 OK\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setattr(grid, "CONNECT_SECONDS", 2.0)
    began = time.monotonic()
    try:
        with pytest.raises(ValueError) as caught, grid.executor_for(f"dask://127.0.0.1:{server.getsockname()[1]}"):
            pass
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert time.monotonic() - began < 20
    message = str(caught.value)
    assert "\n" not in message and "127.0.0.1" in message and ("dask scheduler" in message)


def test_grid__a_dask_address_where_nothing_listens_is_known_before_any_handshake():
    import socket

    from probe.experiments.grid import _unreachable

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert _unreachable(f"tcp://127.0.0.1:{port}") is None  # it accepts: the client's handshake judges it
    assert isinstance(_unreachable(f"tcp://127.0.0.1:{port}"), ConnectionRefusedError)  # closed now: refused
    assert _unreachable("tcp://not-an-address") is None  # not host:port: left to the client


@pytest.mark.slow
def test_frontier__a_hard_prompt_per_length_is_a_point_scored_from_its_token_ids(tiny_frontier, default_model):
    from probe.experiments.frontier import measure
    from probe.experiments.frontier.figure import frontier_figure
    from probe.experiments.frontier.measure import best_row
    from probe.experiments.frontier.record import FrontierReport
    from probe.formats.discovery import load_run
    from probe.readings.explain import Readout

    out, _ = tiny_frontier
    runs = [load_run(p) for p in sorted((out / "runs").iterdir())]
    config = FrontierConfig(**TINY, hard_lengths=(4, 8), hard_steps=2)
    report = measure(config, runs, default_model)
    assert [(h["length"], len(h["tokens"]), h["steps"]) for h in report.hard_prompts] == [(4, 4, 2), (8, 8, 2)]
    start = best_row(report.runs)
    run = next(r for r in runs if str(r.path) == start["run"])
    readout = Readout.from_run(run, default_model)
    for h in report.hard_prompts:  # each accuracy recomputed from its token ids alone
        assert h["run"] == start["run"]
        rows = default_model.embeddings_numpy()[h["token_ids"]]
        assert h["accuracy"] == pytest.approx(float(readout.outcome(rows, readout.splits.test)[0].mean()))
        assert h["accuracy_ci"][0] <= h["accuracy"] <= h["accuracy_ci"][1]
    from probe.formats.writer import owned

    states = {p.name for p in run.path.iterdir() if p.name.startswith("hard-prompt-search-state")}
    assert states == {f"hard-prompt-search-state{s}.{x}" for s in ("", ".L8") for x in ("json", "safetensors")}
    assert all(owned(name) for name in states)  # each length resumes its own state, which probe owns (--force)
    again = measure(config, runs, default_model)  # finished searches read back from their states: the same points
    assert [h["token_ids"] for h in again.hard_prompts] == [h["token_ids"] for h in report.hard_prompts]
    text = render(report)
    assert "## Real-token prompts by length" in text and "| 8 |" in text and "- L=4: `" in text
    figure = frontier_figure(report)
    assert [t.text for t in figure.data if t.name.startswith("real-token")] == [("search L=4", "search L=8")]
    data = report.to_dict()
    assert FrontierReport.from_dict(json.loads(json.dumps(data))).to_json() == report.to_json()
    older = {k: v for k, v in data.items() if k != "hard_prompts"}  # a file from before: none
    assert FrontierReport.from_dict(json.loads(json.dumps(older))).hard_prompts == []


def test_frontier_config__a_hard_length_that_is_not_a_multiple_is_one_line():
    with pytest.raises(
        ValueError, match=r"^a hard-prompt length is 6; expected a positive multiple of the prompt's 4 "
    ):
        FrontierConfig(**TINY, hard_lengths=(6,))
    with pytest.raises(ValueError, match="hard_steps is 0; expected a positive number"):
        FrontierConfig(**TINY, hard_lengths=(4,), hard_steps=0)
