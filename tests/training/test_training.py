"""probe.training.trainer: the loop on all three model kinds, snapshots, adapters, accuracy, resume, SIGKILL."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from probe import load_model, load_prompt, load_run
from probe.core.data import DataSplits, LabelledData
from probe.core.sampling import seeded_batches
from probe.training.config import TrainConfig
from probe.training.trainer import train


def _params_digest(model) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def class_label_run(default_model, tmp_path_factory):
    """One full default-config run (class-label) on the bundled feelings set."""
    out = tmp_path_factory.mktemp("runs") / "class-label"
    before = _params_digest(default_model.model)
    run = train(TrainConfig(init="class-label"), out, model=default_model, progress=False)
    return run, before


@pytest.mark.slow
def test_train__only_the_prompt_changes(class_label_run, default_model):
    _, before = class_label_run
    assert _params_digest(default_model.model) == before


@pytest.mark.slow
def test_train__beats_zero_shot_on_held_out_data(class_label_run):
    run, _ = class_label_run
    assert run.status == "finished"
    assert run.manifest.soft_accuracy > run.manifest.zero_shot_accuracy + 0.05
    metrics = run.metrics()
    assert metrics["loss"].head(20).mean() > metrics["loss"].tail(20).mean()


@pytest.mark.slow
def test_train__snapshots_manifest_and_metrics(class_label_run):
    run, _ = class_label_run
    assert run.steps == list(range(0, 151, 10))
    m = run.manifest.to_dict()  # the manifest as written
    for key in (
        "model",
        "fingerprint",
        "labels",
        "init",
        "init_details",
        "seed",
        "length",
        "optimizer",
        "lr",
        "steps",
        "snapshot_every",
        "data",
        "status",
        "created",
        "final",
    ):
        assert key in m, key
    assert m["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert len(m["data"]["sha256"]) == 64
    assert list(run.evaluations()["step"]) == [0, 50, 100, 150]
    assert len(run.metrics()) == 150


@pytest.mark.slow
def test_train__step0_is_the_class_label_init(class_label_run, default_model):
    run, _ = class_label_run
    e = default_model.embeddings_numpy()
    tok = default_model.tokenizer
    first = run.initial_prompt().vectors
    for i, label in enumerate(run.labels):
        np.testing.assert_allclose(first[i], e[tok(label, add_special_tokens=False)["input_ids"]].mean(0), rtol=1e-6)


@pytest.mark.slow
def test_train__adapter_loads_in_peft_and_equals_final_snapshot(class_label_run):
    from peft import PeftModel
    from transformers import AutoModel

    from probe.core.models import bundled_model_path

    run, _ = class_label_run
    config = json.loads((run.path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(bundled_model_path()), run.path / "adapter")
    weight = peft_model.prompt_encoder["default"].embedding.weight.detach().numpy()
    np.testing.assert_array_equal(weight, run.latest_prompt().vectors)
    # probe reads its own run folder and the adapter alike
    np.testing.assert_array_equal(load_prompt(run.path).vectors, load_prompt(run.path / "adapter").vectors)


def _tiny_splits() -> DataSplits:
    texts = [
        "the team won the match",
        "the match was a draw",
        "rates rose at the bank",
        "shares fell at the bank",
        "the team lost the match",
        "the bank cut rates",
    ] * 2
    labels = ["sports", "sports", "money", "money", "sports", "money"] * 2
    data = LabelledData(texts, labels, ["sports", "money"])
    return DataSplits(data, data)


@pytest.mark.parametrize("fixture", ["tiny_gpt2_path", "tiny_t5_path", "tiny_bert_path"])
def test_train__tiny_models_of_every_kind(fixture, request, tmp_path):
    model = load_model(request.getfixturevalue(fixture), device="cpu")
    before = _params_digest(model.model)
    config = TrainConfig(
        model=str(model.name),
        init="sampled-vocab",
        length=4,
        steps=40,
        batch_size=6,
        lr=0.1,
        snapshot_every=20,
        eval_every=20,
        vocab_top_n=100,
    )
    run = train(config, tmp_path / "run", model=model, splits=_tiny_splits(), progress=False)
    assert run.steps == [0, 20, 40]
    losses = run.metrics()["loss"].to_numpy()
    assert losses[:5].mean() > losses[-5:].mean()
    assert _params_digest(model.model) == before
    prompt = load_prompt(run.path / "adapter")
    np.testing.assert_array_equal(prompt.vectors, run.latest_prompt().vectors)
    assert run.manifest.kind == model.kind


def test_seeded_batches__depend_only_on_seed_and_step():
    stream = seeded_batches(100, 8, seed=3)
    a = dict(next(stream) for _ in range(5))
    resumed = seeded_batches(100, 8, seed=3, start=4)
    step, rows = next(resumed)
    assert step == 4 and np.array_equal(rows, a[4])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"init": "zeros"}, "init 'zeros' is not known"),
        ({"length": 0}, "length is 0"),
        ({"lr": -1.0}, "lr is -1.0"),
        ({"optimizer": "sgd"}, "optimizer 'sgd' is not known"),
        ({"init": "text"}, "needs init_text"),
        ({"task": "mlm"}, "task 'mlm' is not known; expected one of cosine, verbaliser"),
        ({"test_size": 0}, "test_size is 0; expected a positive integer"),
        ({"init": "class-label", "init_scale": -1}, "init_scale is -1; expected a positive number"),
        ({"init": "sampled-vocab", "init_scale": "huge"}, "init_scale is 'huge'; expected a positive number"),
    ],
)
def test_train_config__validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_train_config__round_trip_and_unknown_keys():
    config = TrainConfig(init="random-uniform", init_scale="vocab-norm", steps=7)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.warns(UserWarning, match="unknown TrainConfig keys"):
        assert TrainConfig.from_dict({**config.to_dict(), "future_field": 1}) == config


def test_train__refuses_to_overwrite_a_run(tmp_path, tiny_bert_path):
    model = load_model(tiny_bert_path, device="cpu")
    config = TrainConfig(model=str(model.name), length=2, steps=2, batch_size=4, vocab_top_n=50)
    train(config, tmp_path / "run", model=model, splits=_tiny_splits(), progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        train(config, tmp_path / "run", model=model, splits=_tiny_splits(), progress=False)


_KILL_SCRIPT = """
import os, sys, traceback
from probe.training.config import TrainConfig
from probe.training.trainer import train
from probe.core.data import LabelledData, DataSplits
texts = ["the team won the match", "rates rose at the bank", "the team lost", "the bank cut rates"] * 3
labels = ["sports", "money"] * 6
data = LabelledData(texts, labels, ["sports", "money"])
config = TrainConfig(model=sys.argv[1], init="sampled-vocab", length=4, steps=400, batch_size=4,
                     snapshot_every=5, eval_every=100, vocab_top_n=100)
# imported once; every training is a fresh process forked from here (no torch work is done before a fork),
# so each of the ten kills costs a training, not an interpreter start and the import of torch and transformers
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            train(config, sys.argv[2], splits=DataSplits(data, data), resume=line.strip() == "1", progress=False)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    print(pid, flush=True)
    print(os.waitpid(pid, 0)[1], flush=True)
"""


def _killed(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


@pytest.mark.slow
def test_train__sigkill_at_ten_moments_keeps_every_snapshot_and_resumes(tiny_gpt2_path, tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "train.py"
    script.write_text(_KILL_SCRIPT)
    rng = np.random.default_rng(0)
    seen: set[int] = set()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    errors = tmp_path / "stderr.log"  # a file, not a pipe: nobody has to drain it while the children run
    with open(errors, "w") as err:
        forks = subprocess.Popen(
            [sys.executable, str(script), str(tiny_gpt2_path), str(out)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert forks.stdin is not None and forks.stdout is not None

    def training(resume: bool) -> int:
        assert forks.stdin is not None and forks.stdout is not None
        forks.stdin.write("1\n" if resume else "0\n")
        forks.stdin.flush()
        line = forks.stdout.readline()
        assert line.strip().isdigit(), (line, errors.read_text()[-2000:])
        return int(line)

    try:
        kills = 0
        for _attempt in range(10):
            pid = training(resume=(out / "manifest.json").exists())
            # wait until training has started writing, then kill at a random moment
            deadline = time.time() + 120
            while time.time() < deadline and not (out / "metrics.jsonl").exists():
                time.sleep(0.05)
            time.sleep(float(rng.uniform(0.0, 1.5)))
            with contextlib.suppress(ProcessLookupError):  # it had already finished (and been reaped)
                os.kill(pid, signal.SIGKILL)
            kills += _killed(int(forks.stdout.readline()))
            run = load_run(out)  # the manifest is always whole
            steps = run.steps
            assert seen <= set(steps)  # nothing reported as written is ever lost
            for step in steps:  # every snapshot on disk is complete and readable
                assert run.snapshot(step).vectors.shape == (4, 32)
            seen = set(steps)
            run.records()  # a torn metrics line is skipped, not an error
        assert kills >= 8
        training(resume=True)
        status = int(forks.stdout.readline())
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, errors.read_text()[-2000:]
    finally:
        forks.stdin.close()
        forks.wait(timeout=60)
    run = load_run(out)
    assert run.status == "finished" and run.steps[-1] == 400
    assert run.steps == list(range(0, 401, 5))
    assert torch.equal(
        torch.from_numpy(load_prompt(out / "adapter").vectors), torch.from_numpy(run.latest_prompt().vectors)
    )


def test_train__resume_with_other_config_is_refused(tmp_path, tiny_bert_path):
    model = load_model(tiny_bert_path, device="cpu")
    config = TrainConfig(model=str(model.name), length=2, steps=2, batch_size=4, vocab_top_n=50)
    train(config, tmp_path / "run", model=model, splits=_tiny_splits(), progress=False)
    with pytest.raises(ValueError, match="another config"):
        train(
            replace(config, lr=0.5),
            tmp_path / "run",
            model=model,
            splits=_tiny_splits(),
            resume=True,
            progress=False,
        )


def test_save_adapter__a_reader_never_finds_it_missing_or_stale_after(tiny_bert_path, tmp_path):
    import threading

    from peft import PeftModel
    from safetensors.numpy import load_file

    from probe.tasks.kinds import prompt_parameter, wrap_with_prompt
    from probe.training.callbacks import save_adapter

    model = load_model(tiny_bert_path, device="cpu")
    peft_model = wrap_with_prompt(model, np.zeros((3, model.dim), np.float32))
    folder = tmp_path / "adapter"
    save_adapter(peft_model, folder, "tiny")
    missing, stop = [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            for name in ("adapter_config.json", "adapter_model.safetensors"):
                if not (folder / name).is_file():
                    missing.append(name)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for value in range(1, 30):
            with torch.no_grad():
                prompt_parameter(peft_model).fill_(float(value))
            save_adapter(peft_model, folder, "tiny")
    finally:
        stop.set()
        reader.join()
    assert missing == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # no temporary folder left beside it
    (weights,) = load_file(str(folder / "adapter_model.safetensors")).values()
    assert (weights == 29.0).all()
    assert PeftModel.from_pretrained(load_model(tiny_bert_path, device="cpu").model, folder) is not None


def test_train__verbaliser_on_a_test_subset_records_the_form_the_rows_and_each_example(default_model, tmp_path):
    config = TrainConfig(
        init="class-label",
        length=4,
        steps=4,
        batch_size=8,
        eval_every=4,
        snapshot_every=4,
        task="verbaliser",
        test_size=24,
    )
    run = train(config, tmp_path / "run", model=default_model, progress=False)
    assert run.manifest.task_form == "verbaliser"
    assert run.manifest.data.test_size == 24
    assert run.manifest.evaluation["final"] == {
        "split": "test subset",
        "rows": 24,
        "stratified_seed": 0,
        "discretised": True,
    }
    bits = run.final_correct()
    assert bits is not None and bits.dtype == bool and bits.size == 24
    assert bits.mean() == pytest.approx(run.manifest.soft_accuracy)
    assert "correct" not in run.manifest.final and "correct" not in run.evaluations().columns


def _stop_at(step: int):
    def stop(record) -> None:
        if record.step == step:
            raise KeyboardInterrupt

    return stop


@pytest.mark.parametrize("optimizer", ["adamw", "adafactor"])
def test_train__a_resumed_run_equals_the_uninterrupted_one_bit_for_bit(tmp_path, default_model, optimizer):
    from probe.training.config import TrainConfig
    from probe.training.trainer import train

    config = TrainConfig(
        init="class-label", length=3, steps=6, snapshot_every=2, eval_every=6, eval_size=8, test_size=8,
        lr=0.05, optimizer=optimizer,
    )  # fmt: skip
    whole = train(config, tmp_path / "whole", model=default_model, progress=False)
    with pytest.raises(KeyboardInterrupt):  # stopped during step 3: snapshots 0 and 2 remain
        train(config, tmp_path / "cut", model=default_model, progress=False, callbacks=[_stop_at(3)])
    assert load_run(tmp_path / "cut").steps == [0, 2]
    resumed = train(config, tmp_path / "cut", model=default_model, progress=False, resume=True)
    assert resumed.manifest.resumed_from == 2 and resumed.manifest.resumed_exactly is True
    for step in (4, 6):
        np.testing.assert_array_equal(resumed.snapshot(step).vectors, whole.snapshot(step).vectors)


def test_train__a_finished_run_resumed_with_more_steps_equals_the_longer_run(tmp_path, default_model):
    from probe.training.config import TrainConfig
    from probe.training.trainer import train

    longer = TrainConfig(
        init="class-label", length=3, steps=6, snapshot_every=2, eval_every=6, eval_size=8, test_size=8, lr=0.05
    )
    whole = train(longer, tmp_path / "whole", model=default_model, progress=False)
    short = train(replace(longer, steps=4), tmp_path / "grown", model=default_model, progress=False)
    assert short.status == "finished" and short.steps == [0, 2, 4]
    grown = train(longer, tmp_path / "grown", model=default_model, progress=False, resume=True)
    assert grown.status == "finished" and grown.steps == [0, 2, 4, 6] and grown.manifest.steps == 6
    assert grown.manifest.resumed_from == 4 and grown.manifest.resumed_exactly is True
    np.testing.assert_array_equal(grown.snapshot(6).vectors, whole.snapshot(6).vectors)
    with pytest.raises(ValueError, match="another config.*only --steps may grow"):  # fewer steps: not a continuation
        train(replace(longer, steps=5), tmp_path / "grown", model=default_model, progress=False, resume=True)


def test_train__a_resume_without_the_optimizers_state_says_so(tmp_path, default_model):
    from probe.formats.run import OPTIMIZER_STATE, SNAPSHOTS
    from probe.training.config import TrainConfig
    from probe.training.trainer import train

    config = TrainConfig(
        init="class-label", length=3, steps=4, snapshot_every=2, eval_every=4, eval_size=8, test_size=8
    )
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", model=default_model, progress=False, callbacks=[_stop_at(3)])
    (tmp_path / "cut" / SNAPSHOTS / OPTIMIZER_STATE).unlink()  # as a run written before probe kept it
    resumed = train(config, tmp_path / "cut", model=default_model, progress=False, resume=True)
    assert resumed.manifest.resumed_exactly is False and resumed.status == "finished"


def test_config__a_seed_that_is_not_a_whole_number_is_refused_before_any_folder(tmp_path):
    for bad in (None, -1, 1.5, "0", True):
        with pytest.raises(ValueError, match=f"seed is {bad!r}; expected a whole number from 0"):
            TrainConfig(seed=bad)
    with pytest.raises(ValueError, match="seed is None"):
        replace(TrainConfig(), seed=None)
    assert TrainConfig(seed=3).seed == 3 and not any(tmp_path.iterdir())
