"""Reliability: property tests, a full disk, concurrent readers, and the contract for every file probe touches
(nothing lost, nothing read outside its folder, no traceback), one test per class of promise."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from probe.core.index import VocabIndex
from probe.core.io import atomic_write_bytes
from probe.formats.discovery import load_run
from probe.formats.writer import RunWriter
from probe.readings.reports import nearest_tokens

APP = str(Path(__file__).resolve().parents[1] / "probe" / "dashboard" / "app.py")

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
        cos = [n.cosine for n in p.neighbours]
        assert cos == sorted(cos, reverse=True)
        assert all(0 <= n.token_id < default_model.vocab_size for n in p.neighbours)


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
from probe.formats.writer import RunWriter
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


# ------------------------------------------------------------------ the contract: one test per class of promise


def _cli(args, capsys):
    from probe.cli.parser import main

    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


def _deep(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


def test_data_loss__a_folder_of_the_users_is_refused_and_never_emptied(tmp_path, default_model):
    from dataclasses import replace

    from probe.tasks.kinds import wrap_with_prompt
    from probe.training.callbacks import save_adapter
    from probe.training.config import TrainConfig
    from probe.training.trainer import train

    project = tmp_path / "my-project"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    config = replace(TrainConfig(), steps=2, length=2, eval_every=2, snapshot_every=2)
    with pytest.raises(ValueError, match="is not empty .*notes.txt.*pass --force"):
        train(config, project, model=default_model, progress=False)
    run = train(config, project, model=default_model, progress=False, force=True)
    assert run.status == "finished" and (project / "notes.txt").read_text() == "mine"
    (project / "adapter" / "keep.txt").write_text("mine too")  # a file of the user's inside the adapter folder
    save_adapter(wrap_with_prompt(default_model, np.ones((2, 384), np.float32)), project / "adapter", "default")
    assert (project / "adapter" / "keep.txt").read_text() == "mine too"
    other = tmp_path / "other"
    (other / "adapter").mkdir(parents=True)
    with pytest.raises(ValueError, match="already holds adapter, a name probe writes"):
        train(config, other, model=default_model, progress=False, force=True)


def test_data_loss__resume_keeps_what_it_does_not_own(tmp_path, default_model):
    import json
    from dataclasses import replace

    from probe.training.config import TrainConfig
    from probe.training.trainer import train

    config = replace(TrainConfig(), steps=2, length=2, eval_every=2, snapshot_every=2)
    run = train(config, tmp_path / "r", model=default_model, progress=False)
    path = tmp_path / "r" / "manifest.json"
    data = json.loads(path.read_text())
    data["note"] = "a key of a newer probe"
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="does not know"):
        again = train(config, tmp_path / "r", model=default_model, progress=False, resume=True)
    after = json.loads(path.read_text())
    assert after["note"] == "a key of a newer probe"
    assert after["created"] == data["created"] and after["zero_shot_accuracy"] == run.manifest.zero_shot_accuracy
    assert again.manifest.zero_shot_accuracy is not None


def test_data_loss__a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    first = RunWriter(tmp_path / "r", {"init": "text", "length": 2})
    with pytest.raises(ValueError, match=f"is being written by process {os.getpid()};"):
        RunWriter(tmp_path / "r", {"init": "text", "length": 2}, resume=True)
    first.close()
    RunWriter(tmp_path / "r", {"init": "text", "length": 2}, resume=True).close()  # free again once closed


def test_resources__sizes_come_from_the_real_data_not_from_what_a_file_declares(tmp_path):
    import io
    import json
    import zipfile

    import torch

    from probe.core.io import read_budget
    from probe.dashboard.uploads import read_upload
    from probe.formats.hard_prompt import read_hard_prompt
    from probe.formats.prompts import load_prompt

    buffer = io.BytesIO()
    np.savez_compressed(buffer, a=np.zeros((3000, 8000), np.float32))  # 92 MB of zeros in a few KB
    with pytest.raises(ValueError, match="would take 91.6 MB in memory; the limit is 50.0 MB"):
        read_upload("prompt.npy", buffer.getvalue())
    torch.save({"prompt": torch.zeros(500, 1000)}, tmp_path / "big.pt")
    with (
        zipfile.ZipFile(tmp_path / "big.pt") as src,
        zipfile.ZipFile(tmp_path / "bomb.pt", "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for member in src.infolist():
            dst.writestr(member.filename, src.read(member))
    with pytest.raises(ValueError, match="holds compressed members"):
        load_prompt(tmp_path / "bomb.pt")
    small = io.BytesIO()
    np.save(small, np.zeros((2, 4), np.float32))
    claimed = small.getvalue().decode("latin-1").replace("(2, 4), ", "(90000, 10000000), ")  # 192 bytes, 3.4 TB
    (tmp_path / "huge.npy").write_bytes(claimed.encode("latin-1")[:192])
    with read_budget(2**30), pytest.raises(ValueError, match="would take 3 TB in memory; the limit is 1024.0 MB"):
        load_prompt(tmp_path / "huge.npy")
    (tmp_path / "hard-prompt.json").write_text(json.dumps({"model": "default", "token_ids": [1] * 200_000}))
    with pytest.raises(ValueError, match="expected at most 100000 positions"):
        read_hard_prompt(tmp_path / "hard-prompt.json")


def test_resources__a_zip_that_lies_about_its_sizes_is_one_line(tmp_path):
    import io
    import struct
    import zipfile

    from probe.dashboard.uploads import read_upload

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("adapter/adapter_config.json", '{"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 2}')
        z.writestr("adapter/adapter_model.safetensors", b"\0" * 64 * 2**20)
    blob = bytearray(buffer.getvalue())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        start = 0
        while (start := blob.find(signature, start)) >= 0:
            struct.pack_into("<I", blob, start + offset, 1000)  # declare 1,000 bytes
            start += 4
    with pytest.raises(ValueError) as caught:
        read_upload("adapter.zip", bytes(blob))
    assert len(str(caught.value).splitlines()) == 1 and "probe-upload-" not in str(caught.value)


def test_reads_stay_inside__links_out_of_the_runs_folder_are_refused(tmp_path, default_model):
    from probe.dashboard.uploads import under_folder
    from probe.dashboard.views import readable_runs

    runs, private = tmp_path / "runs", tmp_path / "private"
    (runs / "mine").mkdir(parents=True)
    private.mkdir()
    e = default_model.embeddings_numpy()
    np.save(runs / "mine" / "step-0.npy", e[:3])
    np.save(private / "secret.npy", e[3:6])
    (runs / "leak").mkdir()
    np.save(runs / "leak" / "step-0.npy", e[:3])
    (runs / "leak" / "step-1.npy").symlink_to(private / "secret.npy")
    found, skipped = readable_runs(runs)
    assert [r.name for r in found] == ["mine"] and skipped == [
        "leak: step-1.npy is a link that leads outside the runs folder"
    ]
    with pytest.raises(ValueError, match="holds a link that leads outside the runs folder"):
        under_folder(runs / "leak", runs)
    with pytest.raises(ValueError, match="outside the runs folder"):
        under_folder(runs / "leak" / "step-1.npy", runs)


def test_reads_stay_inside__the_page_cannot_change_the_folders_it_reads(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PROBE_RUNS_DIR", str(tmp_path))
    monkeypatch.delenv("PROBE_EDITABLE_FOLDERS", raising=False)
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception and not [t for t in at.text_input if t.label == "Runs folder"]
    assert any(str(tmp_path) in c.value for c in at.sidebar.caption)
    monkeypatch.setenv("PROBE_EDITABLE_FOLDERS", "1")  # a server started to allow it
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert [t.label for t in at.text_input if t.label == "Runs folder"] == ["Runs folder"]


def test_wrong_results__the_search_state_is_keyed_by_the_data(tmp_path, default_model, default_index):
    import json

    from probe.core.data import DataSplits, load_labelled
    from probe.readings.explain import Readout, harden

    data = load_labelled("feelings")
    half = len(data) // 2
    a = DataSplits(data.subset(list(range(0, half, 2))), data.subset(list(range(1, half, 2))))
    b = DataSplits(data.subset(list(range(half, len(data), 2))), data.subset(list(range(half + 1, len(data), 2))))
    prompt = default_model.embeddings_numpy()[[100, 200, 300]]

    def readout(splits):
        return Readout(default_model, default_index, splits.train.label_names, splits)

    harden(prompt, readout(a), steps=2, eval_every=1, state_dir=tmp_path)
    on_b = harden(prompt, readout(b), steps=2, eval_every=1, state_dir=tmp_path)
    fresh = harden(prompt, readout(b), steps=2, eval_every=1, state_dir=tmp_path / "fresh")
    assert on_b == fresh  # B's search did not start from A's state
    assert (
        json.loads((tmp_path / "hard-prompt-state.json").read_text())["data_sha256"] == readout(b).key()["data_sha256"]
    )


@pytest.mark.slow
def test_wrong_results__changed_data_is_refused_unless_allowed_and_both_hashes_kept(tmp_path, default_model):
    from dataclasses import replace
    from importlib import resources

    from probe.readings.explain import Readout
    from probe.training.config import TrainConfig
    from probe.training.trainer import train

    data = tmp_path / "data.csv"
    data.write_bytes(resources.files("probe").joinpath("bundled", "feelings.csv").read_bytes())
    config = replace(TrainConfig(), data=str(data), steps=2, length=2, eval_every=2, snapshot_every=2)
    run = train(config, tmp_path / "r", model=default_model, progress=False)
    data.write_text(data.read_text() + "a new sentence about joy,joy,train\n")  # a training row added
    with pytest.raises(ValueError, match="has changed since run .* was trained on it"):
        Readout.from_run(run, default_model)
    with pytest.raises(ValueError, match="--data-changed-ok"):
        train(config, tmp_path / "r", model=default_model, progress=False, resume=True)
    Readout.from_run(run, default_model, data_changed_ok=True)
    again = train(config, tmp_path / "r", model=default_model, progress=False, resume=True, data_changed_ok=True)
    assert again.manifest.data.sha256 == run.manifest.data.sha256 and again.manifest.data.changed_sha256


def test_wrong_results__values_that_only_look_right_are_refused(default_model):
    from probe.core.data import LabelledData, split_data
    from probe.core.softprompt import check_vectors
    from probe.formats.hard_prompt import HardPrompt
    from probe.formats.manifest import Manifest
    from probe.tasks.kinds import make_task, wrap_with_prompt

    for ids, shown in (([3.9], "3.9"), (["12"], "'12'"), ([True], "True"), ([float("inf")], "inf")):
        with pytest.raises(ValueError, match=f"token_ids is {shown}; expected token ids"):
            HardPrompt.from_dict({"model": "default", "token_ids": ids})
    with pytest.raises(ValueError, match="labels is 'joy'; expected a list of text"):
        Manifest.from_dict(
            {"format": 1, "model": None, "init": "x", "length": 2, "seed": 0, "status": "running", "labels": "joy"}
        )
    with pytest.raises(ValueError, match="norm overflows float32"):
        check_vectors(np.full((2, 384), 3e38, np.float32))
    peft = wrap_with_prompt(default_model, np.ones((2, 384), np.float32))
    with pytest.raises(ValueError, match="labels 'Joy' and 'joy' tokenise to the same tokens"):
        make_task(default_model, peft, ["Joy", "joy", "fear"])
    with pytest.raises(ValueError, match=r"tokenise to the same tokens \(\[UNK\]\)"):
        make_task(default_model, peft, ["🙂", "🙃"])
    one_class = LabelledData(
        ["a", "b", "c", "d"], ["x", "x", "y", "y"], ["x", "y"], splits=["train", "train", "test", "test"]
    )
    with pytest.raises(ValueError, match="train rows .* hold the single class"):
        split_data(one_class)


def test_wrong_results__a_cache_that_vouches_for_wrong_contents_is_rebuilt(default_model, tmp_path):
    import hashlib
    import json

    from safetensors.numpy import save

    first = VocabIndex.for_model(default_model, cache_dir=tmp_path)
    meta_path = next((tmp_path / "index").glob("*.json"))
    blob = save({"token_ids": np.array([0, 10**9], np.int64), "manifold_reference": np.zeros(3, np.float32)})
    meta_path.with_suffix(".safetensors").write_bytes(blob)
    meta = json.loads(meta_path.read_text())
    meta["arrays_sha256"] = hashlib.sha256(blob).hexdigest()  # the meta vouches for the wrong arrays
    meta_path.write_text(json.dumps(meta))
    again = VocabIndex.for_model(default_model, cache_dir=tmp_path)
    assert again.size == first.size and again.manifold_reference.size == first.manifold_reference.size


def test_broken_files__every_good_run_is_shown_and_no_traceback(monkeypatch, tmp_path, demo_runs):
    import json
    import shutil

    from streamlit.testing.v1 import AppTest

    runs = tmp_path / "runs"
    shutil.copytree(demo_runs / "class-label", runs / "good")
    for name, manifest in (
        ("list", [1]),
        ("no-length", {"format": 1, "model": None, "init": "x", "length": None, "seed": 0, "status": "finished"}),
    ):
        (runs / name / "snapshots").mkdir(parents=True)
        (runs / name / "manifest.json").write_text(json.dumps(manifest))
    (runs / "deep").mkdir()
    (runs / "deep" / "manifest.json").write_text(_deep())
    (runs / "trainer" / "checkpoint-2").mkdir(parents=True)
    shutil.copytree(demo_runs / "class-label" / "adapter", runs / "trainer" / "checkpoint-2", dirs_exist_ok=True)
    (runs / "trainer" / "trainer_state.json").write_text(json.dumps({"global_step": "two", "max_steps": "four"}))
    good = runs / "good"
    (good / "explain.json").write_text('{"importance": 3}')
    (good / "explain").mkdir()
    (good / "explain" / "step-final.json").write_text("{}")
    with open(good / "metrics.jsonl", "a") as f:
        f.write("[1, 2]\n42\n")
    monkeypatch.setenv("PROBE_RUNS_DIR", str(runs))
    monkeypatch.setenv("PROBE_MAP", "pca")
    at = AppTest.from_file(APP, default_timeout=300).run()
    assert not at.exception
    assert "good · step 10" in [s.value for s in at.subheader]
    warnings = " ".join(w.value for w in at.sidebar.warning)
    assert all(name in warnings for name in ("list", "no-length", "deep"))
    for page in ("screens/explain.py", "screens/lens.py", "screens/drift.py", "screens/side_by_side.py"):
        at.switch_page(page).run()
        assert not at.exception, page
    (tmp_path / "findings" / "broken").mkdir(parents=True)
    (tmp_path / "findings" / "broken" / "report.md").write_text("# a report\n")
    (tmp_path / "findings" / "broken" / "report.json").write_text('{"findings": 7}')
    monkeypatch.setenv("PROBE_REPLICATE_DIR", str(tmp_path / "findings"))
    at.switch_page("screens/findings.py").run()
    assert not at.exception and any("# a report" in m.value for m in at.markdown)


@pytest.mark.parametrize(
    ("member", "content", "message"),
    [
        ("adapter_model.safetensors", b"garbage", "not a readable safetensors file"),
        ("adapter_config.json", b"[" * 100_000, "nested too deeply"),
    ],
)
def test_broken_files__uploads_fail_in_one_line(member, content, message):
    import io
    import zipfile

    from probe.dashboard.uploads import read_upload

    buffer = io.BytesIO()
    config = b'{"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 2}'
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("adapter/adapter_config.json", content if member == "adapter_config.json" else config)
        if member != "adapter_config.json":
            z.writestr(f"adapter/{member}", content)
    with pytest.raises(ValueError, match=message) as caught:
        read_upload("adapter.zip", buffer.getvalue())
    assert len(str(caught.value).splitlines()) == 1 and "probe-upload-" not in str(caught.value)
    with pytest.raises(ValueError, match="not a readable zip file"):
        read_upload("x.zip", b"PK\x03\x04 not really")


def test_cli__every_bad_record_is_one_line_and_exit_2(tmp_path, capsys, default_model):
    import json

    bad = {
        "manifest": ("run/manifest.json", _deep()),
        "trainer_state": ("trainer/trainer_state.json", _deep()),
        "typed manifest": (
            "typed/manifest.json",
            json.dumps({"format": 1, "model": 3, "init": "x", "length": 2, "seed": 0, "status": "running"}),
        ),
    }
    for path, text in bad.values():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    (tmp_path / "run" / "snapshots").mkdir()
    code, err = _cli(["drift", str(tmp_path / "run")], capsys)
    assert code == 2 and "nested too deeply" in err and len(err.splitlines()) == 1
    code, err = _cli(["drift", str(tmp_path / "typed")], capsys)
    assert code == 2 and "model is 3; expected text or null" in err
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(_deep())
    code, err = _cli(["report", str(tmp_path / "adapter")], capsys)
    assert code == 2 and "nested too deeply" in err
    (tmp_path / "hard-prompt.json").write_text('{"model": "default", "token_ids": [Infinity]}')
    code, err = _cli(["report", str(tmp_path / "hard-prompt.json")], capsys)
    assert code == 2 and "token_ids is inf; expected token ids" in err
    (tmp_path / "data.jsonl").write_text('{"text": "a", "label": "x"}\n' + _deep(50_000) + "\n")
    np.save(tmp_path / "p.npy", default_model.embeddings_numpy()[:2])
    code, err = _cli(
        ["explain", str(tmp_path / "p.npy"), "--data", str(tmp_path / "data.jsonl"), "--task", "cosine"], capsys
    )
    assert code == 2 and "nested too deeply" in err and len(err.splitlines()) == 1
    long = "word " * 40_000  # a 200 KB document in one CSV field
    (tmp_path / "long.csv").write_text(f'text,label\n"{long}",a\nshort,b\nshort two,a\nshort three,b\n')
    from probe.core.data import load_labelled

    assert len(load_labelled(tmp_path / "long.csv").texts[0]) > 150_000


def test_cli__resuming_a_recorded_run_says_why_it_cannot(tmp_path, capsys, default_model):
    from probe.tasks.kinds import wrap_with_prompt
    from probe.training.integrations import record

    with record(wrap_with_prompt(default_model, np.ones((2, 384), np.float32)), tmp_path / "rec", every=1) as rec:
        rec.step(1, loss=1.0)
    code, err = _cli(["train", "--out", str(tmp_path / "rec"), "--resume", "--steps", "2"], capsys)
    assert code == 2 and "was not trained by probe train" in err


def test_file_modes__atomic_writes_keep_the_old_mode_or_the_umask_default(tmp_path):
    import stat

    path = tmp_path / "shared.json"
    atomic_write_bytes(path, b"{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    path.chmod(0o640)
    atomic_write_bytes(path, b"{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_data_loss__output_to_a_device_or_a_pipe_is_written_through_never_replaced(tmp_path):
    """``--out /dev/null`` or a FIFO: an atomic replace would put a plain file where the device or pipe was (a
    FIFO stands for both here, so that a regression cannot replace the machine's /dev/null)."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic_write_bytes(fifo, b"report")
    reader.join(timeout=10)
    assert got == [b"report"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_live_folders__a_tensor_file_still_being_written_is_not_a_snapshot_yet(tmp_path, default_model):
    import io

    import torch

    folder = tmp_path / "loop"
    folder.mkdir()
    e = torch.from_numpy(default_model.embeddings_numpy()[:3].copy())
    for step in (0, 10):
        torch.save(e + step, folder / f"step-{step}.pt")
    whole = io.BytesIO()
    torch.save(e + 20, whole)
    (folder / "step-20.pt").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])  # torch.save half done
    run = load_run(folder)
    assert run.steps == [0, 10] and run.latest_prompt().step == 10
    (folder / "step-20.pt").write_bytes(whole.getvalue())  # the write ends
    assert load_run(folder).steps == [0, 10, 20]


def test_data_loss__a_failed_write_gives_the_lock_back(tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        _fill_the_disk(m)
        with pytest.raises(OSError, match="No space left"):
            RunWriter(tmp_path / "r", {"init": "text", "length": 2})
    RunWriter(tmp_path / "r", {"init": "text", "length": 2}).close()  # space freed: the same command runs
    RunWriter(tmp_path / "r", {"init": "text", "length": 2}, resume=True).close()


def test_data_loss__a_lock_whose_holder_ended_is_taken_over_with_a_log_line(tmp_path, caplog):
    import socket

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / ".probe-lock").write_text("")
    (folder / ".probe-writer").write_text(f"{ended.pid} {socket.gethostname()}\n")
    with caplog.at_level("WARNING", logger="probe.formats.writer"):
        writer = RunWriter(folder, {"init": "text", "length": 2})
    assert f"taking over the lock of process {ended.pid} on {socket.gethostname()}, which ended" in caplog.text
    assert (folder / ".probe-writer").read_text().split() == [str(os.getpid()), socket.gethostname()]
    writer.close()


@pytest.mark.parametrize("wrong", [None, 3, ["runs/x"]])
def test_boundary__none_a_number_or_a_list_where_a_run_config_or_model_belongs_is_one_line(wrong, default_model):
    import probe

    with pytest.raises(TypeError, match=r"^run is a \w+; expected a run folder's path$"):
        probe.load_run(wrong)
    with pytest.raises(TypeError, match=r"^config is a \w+; expected a TrainConfig"):
        probe.train(wrong, "never-written")
    assert not Path("never-written").exists()
    with pytest.raises(TypeError, match=r"^model is a \w+; expected a loaded model"):
        probe.nearest_tokens(np.ones((2, 384), np.float32), wrong)


@pytest.mark.parametrize("wrong", [None, "default", ["default"]])
def test_boundary__the_wrong_type_where_a_model_run_or_splits_belong_in_train_drift_and_compare(
    wrong, default_model, demo_runs, tmp_path
):
    import probe

    config = probe.TrainConfig(init="random-uniform", length=2, steps=1)
    kinds = {"model": wrong, "splits": wrong} if wrong is not None else {}
    for name, value in kinds.items():
        with pytest.raises(TypeError, match=rf"^{name} is a \w+; expected "):
            probe.train(config, tmp_path / "never", **{name: value})
    assert not (tmp_path / "never").exists()
    run = probe.load_run(demo_runs / "class-label")
    with pytest.raises(TypeError, match=r"^model is a \w+; expected a loaded model"):
        probe.drift_table(run, wrong)
    with pytest.raises(TypeError, match=r"^run is a \w+; expected an opened run"):
        probe.drift_table(wrong, default_model)
    vectors = np.ones((2, 384), np.float32)
    with pytest.raises(TypeError, match=r"^model is a \w+; expected a loaded model .* or a VocabIndex"):
        probe.compare_prompts(vectors, vectors, wrong)


def test_boundary__a_text_too_long_for_a_path_is_one_line():
    import probe

    with pytest.raises(ValueError, match="run is a text of 10,000 characters; expected a run folder's path"):
        probe.load_run("x" * 10_000)  # "File name too long" before
    with pytest.raises(ValueError, match="path is a text of 10,000 characters; expected a prompt file or folder's"):
        probe.load_prompt("x" * 10_000)
    with pytest.raises(TypeError, match="^path is a NoneType; expected a prompt file or folder's path$"):
        probe.load_prompt(None)
