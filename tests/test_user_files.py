"""Nothing of the user's is deleted by any command or option (issue 30): one matrix. Every command and API that
writes (training with --force and --resume, the recorders with overwrite=True, a grid and a sweep with --force, the
demo with --force, explain, harden, every --out) runs on a folder with a file of the user's planted in every folder
probe writes into (the run, ``adapter/``, ``explain/``, ``snapshots/``, a sweep's --out and its ``runs/``, the
cache); each planted file must survive byte for byte, and the same command must then write the folder again.

The refusals on the way in (a folder of the user's without --force, a name probe writes) are in
``tests/test_reliability.py`` (docs/errors.md 45-47)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from probe.cli.parser import main
from probe.formats.discovery import load_run
from probe.training.config import TrainConfig

TINY = replace(TrainConfig(), steps=2, length=2, eval_every=2, snapshot_every=1, eval_size=8, test_size=8)
"""A run of two steps, two positions, scored on eight test rows: the writing is what is tested, not the training."""
TRAIN_ARGS = ["--steps", "2", "--length", "2", "--eval-every", "2", "--snapshot-every", "1", "--eval-size", "8"]
TRAIN_ARGS += ["--test-size", "8", "--no-progress"]
RUN_FOLDERS = ("", "adapter", "explain", "snapshots")
"""The folders of a run probe writes into ("" is the run folder itself)."""


def plant(folder: Path, subfolders: tuple[str, ...] = RUN_FOLDERS) -> dict[Path, bytes]:
    """A file of the user's in ``folder`` and in each of its ``subfolders`` (created when missing), some of them
    with names close to probe's own; returns path -> bytes."""
    planted: dict[Path, bytes] = {}
    for sub in subfolders:
        where = folder / sub
        where.mkdir(parents=True, exist_ok=True)
        names = ["mine.txt", "notes.md"]
        names += {
            "adapter": ["README.md"],  # PEFT's model card: probe never writes it
            "snapshots": ["step-00000001.json", "step-1.safetensors"],  # not the names of probe's snapshots
            "explain": ["step-00000001.md", "summary.json"],
        }.get(sub, [])
        for name in names:
            data = f"the user's {name} in {where.name}\n".encode() + bytes(range(256))
            (where / name).write_bytes(data)
            planted[where / name] = data
    return planted


def survived(planted: dict[Path, bytes]) -> None:
    """Every planted file is still there, byte for byte."""
    lost = [str(p) for p, data in planted.items() if not p.is_file() or p.read_bytes() != data]
    assert not lost, f"user files lost or changed: {lost}"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, default_model) -> Path:
    """A finished run of :data:`TINY`, trained once; cases work on copies."""
    from probe.training.trainer import train

    out = tmp_path_factory.mktemp("user-files") / "run"
    train(TINY, out, model=default_model, progress=False)
    return out


def copy_run(tiny_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def _cli(*argv: str) -> None:
    assert main(list(argv)) == 0, argv


def case_train_force(tiny_run: Path, tmp_path: Path, model) -> None:
    """``probe train --force`` into a folder of the user's; then ``--resume`` with more steps writes it again
    (the library call the command makes, on the loaded model)."""
    from probe.training.trainer import train

    out = tmp_path / "project"
    planted = plant(out, ("",))
    train(TINY, out, model=model, progress=False, force=True)
    survived(planted)
    planted |= plant(out, RUN_FOLDERS[1:])  # now the run's own folders exist: the user's files there too
    train(replace(TINY, steps=3), out, model=model, progress=False, resume=True)
    survived(planted)
    assert load_run(out).steps == [0, 1, 2, 3] and load_run(out).status == "finished"


def case_train_resume(tiny_run: Path, tmp_path: Path, model) -> None:
    """``probe train --resume`` on a run with the user's files in every folder, twice."""
    from probe.training.trainer import train

    out = copy_run(tiny_run, tmp_path)
    planted = plant(out)
    for steps in (3, 4):
        train(replace(TINY, steps=steps), out, model=model, progress=False, resume=True)
        survived(planted)
    assert load_run(out).steps[-1] == 4


def _tracked(out: Path, steps: int, overwrite: bool, old_name: bool = False) -> None:
    import warnings

    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModel

    import probe
    from probe.core.models import bundled_model_path

    peft_model = get_peft_model(
        AutoModel.from_pretrained(bundled_model_path()),
        PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=2, token_dim=384),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        start = probe.record if old_name else probe.track
        with start(peft_model, out, every=1, overwrite=overwrite) as rec:
            for step in range(1, steps + 1):
                rec.step(step, loss=1.0 / step)


def _probes_files(out: Path) -> None:
    """Files probe wrote in the run's folders, which an overwrite must replace or remove."""
    (out / "explain").mkdir(exist_ok=True)
    (out / "explain" / "step-00000003.json").write_text("{}")  # what probe explain writes there
    (out / "adapter").mkdir(exist_ok=True)
    (out / "adapter" / "adapter_config.json").write_text("{}")  # what probe writes there
    (out / "hard-prompt-search-state.json").write_text("{}")  # probe harden's resumable state


def _probes_files_went(out: Path) -> None:
    assert not (out / "explain" / "step-00000003.json").exists()
    assert not (out / "hard-prompt-search-state.json").exists()
    assert (out / "adapter" / "adapter_config.json").read_text() != "{}"


def case_track_overwrite(tiny_run: Path, tmp_path: Path, model) -> None:
    """``probe.track(..., overwrite=True)`` and its old name ``probe.record``, each on a run with the user's files:
    the run is rewritten (probe's own files go), the user's stay, and it can be done again (no stranded lock)."""
    out = tmp_path / "tracked"
    _tracked(out, steps=3, overwrite=False)
    _probes_files(out)
    planted = plant(out)
    _tracked(out, steps=2, overwrite=True)
    survived(planted)
    _probes_files_went(out)
    _tracked(out, steps=1, overwrite=True, old_name=True)
    survived(planted)
    run = load_run(out)
    assert run.status == "finished" and run.steps == [0, 1] and list(run.metrics()["step"]) == [1]


def case_callback_overwrite(tiny_run: Path, tmp_path: Path, model) -> None:
    """``ProbeCallback(..., overwrite=True)`` (the Trainer's callback) twice on a run with the user's files."""
    from types import SimpleNamespace

    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModel

    from probe.core.models import bundled_model_path
    from probe.training.integrations import ProbeCallback

    out = copy_run(tiny_run, tmp_path)
    _probes_files(out)
    planted = plant(out)
    peft_model = get_peft_model(
        AutoModel.from_pretrained(bundled_model_path()),
        PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=2, token_dim=384),
    )
    for _ in range(2):
        callback = ProbeCallback(out, every=1, overwrite=True, log_drift=False)
        state = SimpleNamespace(max_steps=1, is_world_process_zero=True, global_step=0)
        callback.on_train_begin(SimpleNamespace(seed=0, learning_rate=0.1), state, None, model=peft_model)
        state.global_step = 1
        callback.on_train_end(None, state, None)
        survived(planted)
    _probes_files_went(out)
    assert load_run(out).steps == [0, 1] and load_run(out).status == "finished"


def case_grid_force(tiny_run: Path, tmp_path: Path, model) -> None:
    """``run_grid(..., force=True)`` (every sweep's --force) retrains a run with other settings, twice."""
    from probe.experiments.grid import run_grid

    shutil.copytree(tiny_run, tmp_path / "a")
    _probes_files(tmp_path / "a")
    planted = plant(tmp_path / "a") | plant(tmp_path, ("",))
    with pytest.raises(ValueError, match="holds a run with other settings; pass --force"):
        run_grid({"a": replace(TINY, steps=1)}, tmp_path, model=model)
    for steps in (1, 2):
        other = replace(TINY, steps=steps, lr=0.02)
        [run] = run_grid({"a": other}, tmp_path, model=model, force=True)
        survived(planted)
        assert run.status == "finished" and other.same_as(run.manifest.config)
    _probes_files_went(tmp_path / "a")


def case_sweep_force(tiny_run: Path, tmp_path: Path, model) -> None:
    """``probe frontier --force`` (``run_sweep``, the driver every sweep command shares: frontier, wayward, audit,
    replicate) over a run with other settings: the user's files in --out, in ``runs/`` and in the run's folders
    stay; run again, it writes the report again."""
    from probe.experiments.frontier import FrontierConfig, frontier

    out = tmp_path / "sweep"
    config = FrontierConfig(weights=(0.0,), seeds=(0,), steps=1, length=1, test_size=8, bootstrap=10)
    [name] = config.run_configs()
    run = Path(shutil.copytree(tiny_run, out / "runs" / name))  # a run of other settings
    planted = plant(out, ("", "runs")) | plant(run)
    for _ in range(2):  # the first retrains the run, the second finds it finished
        frontier(config, out, model=model, progress=False, force=True)
        survived(planted)
        assert load_run(run).manifest.config["length"] == 1 and (out / "frontier.json").is_file()


def case_demo_force(tiny_run: Path, tmp_path: Path, model) -> None:
    """``probe demo --force`` (``ensure_runs``) over a run with other settings: retrained, the user's files kept;
    run again, it finds the run finished."""
    from probe.experiments.demo import ensure_runs

    out = tmp_path / "demo"
    shutil.copytree(tiny_run, out / "class-label")
    planted = plant(out, ("",)) | plant(out / "class-label")
    for _ in range(2):
        [run] = ensure_runs(out, {"class-label": replace(TINY, lr=0.02)}, model=model, progress=False, force=True)
        survived(planted)
        assert run.manifest.config["lr"] == 0.02 and run.status == "finished"


def _readout(run: Path, model):
    from probe.readings.explain import Readout

    loaded = load_run(run)
    return loaded, Readout.from_run(loaded, model, test_size=8)


def case_explain(tiny_run: Path, tmp_path: Path, model) -> None:
    """``probe explain`` into a run (explain.json, explain/, hard-prompt.json and its search state) and into its
    cache, twice."""
    from probe.readings.explain import explain, save_explain

    out = copy_run(tiny_run, tmp_path)
    planted = plant(out)
    cache = tmp_path / "cache"
    planted |= plant(cache, ("", "zero-shot"))
    with pytest.MonkeyPatch.context() as m:
        m.setenv("PROBE_CACHE_DIR", str(cache))
        run, readout = _readout(out, model)
        record = explain(
            run.latest_prompt(), readout, hard_steps=1, lens_tokens=20, lens_texts=2, bootstrap=10, state_dir=out
        )
    survived(planted)
    for _ in range(2):  # the record written into the run, and written again
        save_explain(record, out)
        survived(planted)
    assert (out / "explain.json").is_file() and any((out / "explain").glob("step-*.json"))
    assert set(p for p in cache.rglob("*") if p.is_file()) - set(planted)  # probe wrote into the cache too


def case_harden(tiny_run: Path, tmp_path: Path, model) -> None:
    """``probe harden`` in a run: its resumable search state (``hard-prompt-search-state.*``), twice."""
    from probe.readings.explain.hardening import harden
    from probe.readings.explain.search import SearchSettings

    out = copy_run(tiny_run, tmp_path)
    planted = plant(out)
    for _ in range(2):  # the second finds its state and writes it again
        run, readout = _readout(out, model)
        search = SearchSettings(candidates=2, top_k=4)
        hard = harden(
            run.latest_prompt(), readout, steps=1, eval_every=1, method="search", search=search, state_dir=out
        )
        survived(planted)
        assert len(hard.token_ids) == 2
    assert any(out.glob("hard-prompt-search-state.*"))


def case_out(tiny_run: Path, tmp_path: Path, model) -> None:
    """``--out FILE`` (report, drift, compare, explain, harden and every reading write it through ``emit``): a file
    beside it is the user's."""
    from probe.cli.options import emit

    reports = tmp_path / "reports"
    planted = plant(reports, ("",))
    _cli("report", str(tiny_run), "--out", str(reports / "report.md"))
    emit("again", str(reports / "report.md"))
    survived(planted)
    assert (reports / "report.md").read_text() == "again\n"


def case_save_adapter(tiny_run: Path, tmp_path: Path, model) -> None:
    """``save_adapter`` (every run's ``adapter/``) into a folder of the user's files, twice."""
    from probe.tasks.kinds import wrap_with_prompt
    from probe.training.callbacks import save_adapter

    folder = tmp_path / "adapter"
    planted = plant(folder, ("",))
    for scale in (1.0, 2.0):
        save_adapter(wrap_with_prompt(model, np.full((2, 384), scale, np.float32)), folder, "default")
        survived(planted)
    assert (folder / "adapter_config.json").is_file()


CASES: dict[str, Callable[[Path, Path, object], None]] = {
    "train --force": case_train_force,
    "train --resume": case_train_resume,
    "track/record overwrite=True": case_track_overwrite,
    "ProbeCallback overwrite=True": case_callback_overwrite,
    "run_grid force=True": case_grid_force,
    "frontier --force": case_sweep_force,
    "demo --force": case_demo_force,
    "explain": case_explain,
    "harden": case_harden,
    "--out": case_out,
    "save_adapter": case_save_adapter,
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_user_files__survive_every_writing_command_and_the_folder_is_written_again(
    case, tiny_run, tmp_path, default_model
):
    CASES[case](tiny_run, tmp_path, default_model)
