"""Reliability: property tests, a full disk, concurrent readers during training, the dashboard's bind address."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from probe.core.index import VocabIndex
from probe.core.io import atomic_write_bytes
from probe.formats.run import RunWriter
from probe.formats.runs import load_run
from probe.readings.reports import nearest_tokens

_VOCAB = np.random.default_rng(0).normal(size=(400, 16)).astype(np.float32)
_FAISS = VocabIndex(_VOCAB, backend="faiss")
_TORCH = VocabIndex(_VOCAB, backend="torch")
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)
prompts = arrays(np.float32, st.tuples(st.integers(1, 12), st.just(16)), elements=finite).filter(
    lambda a: (np.linalg.norm(a, axis=1) > 1e-3).all()
)


@settings(max_examples=60, deadline=None)
@given(prompts, st.integers(1, 20))
def test_property__topk_descending_with_valid_ids(vectors, k):
    scores, ids = _FAISS.search(vectors, k)
    assert scores.shape == ids.shape == (len(vectors), k)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    assert ((ids >= 0) & (ids < 400)).all()
    assert all(len(set(row)) == k for row in ids.tolist())
    assert (scores <= 1.0 + 1e-5).all() and (scores >= -1.0 - 1e-5).all()


@settings(max_examples=40, deadline=None)
@given(prompts, st.floats(1e-3, 1e3))
def test_property__cosine_is_invariant_to_scaling(vectors, factor):
    a_scores, a_ids = _FAISS.search(vectors, 5)
    b_scores, b_ids = _FAISS.search(vectors * np.float32(factor), 5)
    np.testing.assert_allclose(a_scores, b_scores, atol=1e-4)
    # ids agree wherever the scores are not tied
    gaps = np.diff(a_scores, axis=1)
    for row in range(len(vectors)):
        if (np.abs(gaps[row]) > 1e-4).all():
            assert a_ids[row].tolist() == b_ids[row].tolist()


@settings(max_examples=40, deadline=None)
@given(prompts)
def test_property__faiss_and_torch_agree(vectors):
    fs, fi = _FAISS.search(vectors, 7)
    ts, ti = _TORCH.search(vectors, 7)
    np.testing.assert_allclose(fs, ts, atol=1e-4)
    for row in range(len(vectors)):
        if (np.abs(np.diff(fs[row])) > 1e-4).all():
            assert fi[row].tolist() == ti[row].tolist()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays(np.float32, st.tuples(st.integers(1, 6), st.just(384)), elements=finite))
def test_property__any_finite_prompt_gets_a_report(default_model, default_index, vectors):
    report = nearest_tokens(vectors, default_model, k=3, index=default_index)
    for p in report.positions:
        cos = [n.cosine for n in p.neighbors]
        assert cos == sorted(cos, reverse=True)
        assert all(0 <= n.token_id < default_model.vocab_size for n in p.neighbors)


def _fill_the_disk(monkeypatch) -> None:
    """Every file opened with os.fdopen (how atomic writes write) takes half of a write, then ENOSPC."""
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))


def test_disk_full__atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"
    target.write_text("old")
    _fill_the_disk(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temp file left behind


def test_disk_full__cli_says_so_in_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, capsys):
    from probe.cli.parser import main

    np.save(tmp_path / "p.npy", np.ones((2, 384), np.float32))
    target = tmp_path / "out" / "r.md"
    target.parent.mkdir()
    target.write_text("old report")
    _fill_the_disk(monkeypatch)
    assert main(["report", str(tmp_path / "p.npy"), "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "disk is full" in err
    assert target.read_text() == "old report"
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.md"]  # no half-written temp file left


_WRITER = """
import sys, time
import numpy as np
from probe.formats.run import RunWriter
w = RunWriter(sys.argv[1], {"model": "m", "init": "x", "length": 50, "seed": 0})
rng = np.random.default_rng(0)
for step in range(0, 400, 2):
    w.write_snapshot(step, rng.normal(size=(50, 64)).astype(np.float32))
    w.log("train", step=step, loss=float(step), lr=0.1)
    w.update(last_step=step)
w.update(status="finished")
"""


@pytest.mark.slow
def test_concurrent_reader__never_sees_a_torn_run(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(script), str(out)])
    errors: list[BaseException] = []
    reads = 0
    last_seen = -1
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if not (out / "manifest.json").exists():
            continue
        try:
            run = load_run(out)
            steps = run.steps
            assert steps == sorted(steps) and (not steps or steps[-1] >= last_seen)
            if steps:
                last_seen = steps[-1]
                assert run.snapshot(steps[-1]).vectors.shape == (50, 64)
            run.metrics()
            reads += 1
        except BaseException as e:  # any torn read fails the test below
            errors.append(e)
    proc.wait(timeout=60)
    assert not errors, errors[:3]
    assert reads > 20 and load_run(out).status == "finished"


def test_concurrent_reader__drift_while_training(tmp_path, default_model, default_index):
    """The writer waits after each snapshot until the reader has read the run: every read overlaps training."""
    from probe.readings.drift import drift_table

    writer = RunWriter(tmp_path / "run", {"model": default_model.name, "init": "x", "length": 3, "seed": 0})
    rng = np.random.default_rng(1)
    written, read = threading.Semaphore(0), threading.Semaphore(0)
    steps = list(range(0, 60, 5))

    def write() -> None:
        for step in steps:
            writer.write_snapshot(step, rng.normal(size=(3, 384)).astype(np.float32))
            written.release()
            assert read.acquire(timeout=60)  # the next snapshot comes only after the reader has looked
        writer.update(status="finished")

    thread = threading.Thread(target=write)
    thread.start()
    seen = []
    for count in range(1, len(steps) + 1):
        assert written.acquire(timeout=60)
        run = load_run(tmp_path / "run")
        assert run.status == "running"  # training is still going on
        table = drift_table(run, default_model, index=default_index)
        assert table["step"].is_monotonic_increasing and sorted(set(table["step"])) == steps[:count]
        seen.append(len(table))
        read.release()
    thread.join()
    assert seen == [3 * c for c in range(1, len(steps) + 1)]


def test_dashboard__binds_to_localhost_by_default(monkeypatch, tmp_path):
    from probe.cli.parser import main

    seen = {}
    monkeypatch.setattr(os, "execv", lambda path, command: seen.setdefault("command", command))
    (tmp_path / "runs").mkdir()
    main(["dashboard", str(tmp_path / "runs"), "--no-demo"])
    command = seen["command"]
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
