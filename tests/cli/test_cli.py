"""probe.cli.parser: the report command end to end, output formats, one-line errors."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from probe.cli.parser import main


@pytest.fixture(scope="module")
def default_adapter(tmp_path_factory):
    """A PEFT prompt-tuning adapter saved by PEFT itself for the default model."""
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModel

    from probe.core.models import bundled_model_path

    path = tmp_path_factory.mktemp("adapter")
    model = get_peft_model(
        AutoModel.from_pretrained(bundled_model_path()),
        PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=5),
    )
    with torch.no_grad():
        model.prompt_encoder["default"].embedding.weight.copy_(
            torch.randn(5, 384, generator=torch.Generator().manual_seed(4))
        )
    model.save_pretrained(path)
    return path


def test_report__json_matches_independent_brute_force(default_adapter, default_model, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["report", str(default_adapter), "--format", "json", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    from safetensors.torch import load_file

    prompt = load_file(default_adapter / "adapter_model.safetensors")["prompt_embeddings"].numpy()
    vocab = default_model.embeddings_numpy()
    tok = default_model.tokenizer
    allowed = np.array(
        [
            i
            for i in range(len(tok))
            if i not in tok.all_special_ids and not tok.convert_ids_to_tokens(i).startswith("[unused")
        ]
    )
    sims = (prompt / np.linalg.norm(prompt, axis=1, keepdims=True)) @ (
        vocab[allowed] / np.linalg.norm(vocab[allowed], axis=1, keepdims=True)
    ).T
    for pos in data["positions"]:
        order = np.argsort(-sims[pos["position"]])[:5]
        assert [n["token_id"] for n in pos["neighbours"]] == allowed[order].tolist()
        np.testing.assert_allclose([n["cosine"] for n in pos["neighbours"]], sims[pos["position"], order], atol=1e-5)


def test_report__markdown_to_stdout(default_adapter, capsys):
    assert main(["report", str(default_adapter), "-k", "3", "--labels", "science,sports", "--controls"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Nearest tokens:") and "random-uniform control" in out


def test_report__csv(default_adapter, capsys):
    assert main(["report", str(default_adapter), "-k", "2", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("position,rank,token_id,token,cosine") and len(lines) == 1 + 5 * 2


def test_report__wrong_dim_is_one_line_with_both_dims(tmp_path, capsys):
    np.save(tmp_path / "p.npy", np.ones((3, 768), np.float32))
    assert main(["report", str(tmp_path / "p.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "768" in err and "384" in err and "Traceback" not in err


def test_report__pickled_code_refused_without_running(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump(Exploit(), f)
    assert main(["report", str(tmp_path / "evil.pt")]) == 2
    assert "refuses to unpickle" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "/no/such/prompt.npy"], "does not exist"),
        (["report", "{npy}", "--labels", "a,,b"], "empty label"),
        (["report", "{npy}", "--model", "no-such-org/no-such-model-xyz"], "not a local folder"),
    ],
)
def test_report__errors_exit_2_with_one_line(tmp_path, capsys, argv, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    np.save(tmp_path / "p.npy", np.ones((3, 384), np.float32))
    argv = [a.replace("{npy}", str(tmp_path / "p.npy")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_report__bad_k_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["report", "x.npy", "-k", "0"])
    assert e.value.code == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["drift", ".", "--role", "decoder"],
            "probe drift: error: --role is an option of probe report, probe compare, ",
        ),
        (["report", "x.npy", "--lenght", "3"], "probe report: error: unrecognized arguments: --lenght 3"),
        (["--bogus"], "probe: error: unrecognized arguments: --bogus"),
    ],
)
def test_cli__an_unknown_argument_is_named_by_its_command(capsys, argv, said):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith(said), err


@pytest.mark.slow
def test_cli__debug_shows_the_traceback(tmp_path):
    np.save(tmp_path / "p.npy", np.ones((3, 768), np.float32))
    run = subprocess.run(
        [sys.executable, "-m", "probe", "--debug", "report", str(tmp_path / "p.npy")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0 and "Traceback" in run.stderr


@pytest.mark.slow
def test_cli__python_dash_m_and_version():
    run = subprocess.run([sys.executable, "-m", "probe", "--version"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("probe ")


def test_report__all_tokens_matches_brute_force_over_every_row(default_adapter, default_model, capsys):
    assert main(["report", str(default_adapter), "--format", "json", "--all-tokens"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["token_filter"]["exclude_special"] is False and data["searchable_tokens"] == 30522
    from safetensors.torch import load_file

    prompt = load_file(default_adapter / "adapter_model.safetensors")["prompt_embeddings"].numpy()
    vocab = default_model.embeddings_numpy()
    sims = (prompt / np.linalg.norm(prompt, axis=1, keepdims=True)) @ (
        vocab / np.linalg.norm(vocab, axis=1, keepdims=True)
    ).T
    for pos in data["positions"]:
        order = np.argsort(-sims[pos["position"]])[:5]
        assert [n["token_id"] for n in pos["neighbours"]] == order.tolist()


def test_main__leaves_logging_and_warning_filters_as_it_found_them(tmp_path, capsys):
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    np.save(tmp_path / "p.npy", np.ones((2, 384), np.float32))
    root = logging.getLogger()
    before = (list(warnings.filters), root.level, list(root.handlers), hf_logging.get_verbosity())
    assert main(["report", str(tmp_path / "p.npy"), "-k", "2"]) == 0
    assert main(["report", str(tmp_path / "missing.npy")]) == 2
    assert (list(warnings.filters), root.level, list(root.handlers), hf_logging.get_verbosity()) == before
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "p.npy", "-k", "0"], "expected a positive integer"),
        (["drift", "run", "-k", "-3"], "expected a positive integer"),
        (["compare", "a", "b", "-k", "0"], "expected a positive integer"),
        (["demo", "--steps", "0"], "expected a positive integer"),
        (["dashboard", "--port", "0"], "expected a positive integer"),
        (["replicate", "--lengths", "5", "0"], "expected a positive integer"),
        (["replicate", "--task", "mlm"], "invalid choice"),
        (["replicate", "--test-size", "0"], "expected a positive integer"),
        (["train", "--out", "r", "--task", "mlm"], "invalid choice"),
        (["report", "p.npy", "--format", "xml"], "invalid choice"),
        (["train", "--out", "r", "--steps", "ten"], "expected an integer"),
    ],
)
def test_cli__every_number_and_choice_is_checked_before_anything_runs(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_commands__the_same_checks_hold_from_python():
    from probe.cli.commands import Demo, Drift, Report
    from probe.cli.replicate import Replicate

    with pytest.raises(ValueError, match="-k is 0; expected a positive number"):
        Report(prompt="p.npy", k=0)
    with pytest.raises(ValueError, match="--format is 'xml'; expected one of md, json, csv"):
        Drift(run_path="run", format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--lengths is -1"):
        Replicate(lengths=[5, -1])
    assert Demo(steps=3).steps == 3


def test_train_help__each_config_field_has_its_help_once(capsys):
    import dataclasses

    from probe.training.config import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, at hyphens too
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["help"] and "".join(f.metadata["help"].split()) in text


def test_cli__bad_counts_and_threads_are_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    from probe.readings.explain import explain

    for flag in ("--attribution", "--triggers"):
        assert main(["explain", str(tmp_path / "nothing"), flag, "-1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"probe explain: error: {flag} is -1; expected a count: 0 (off) or more"]
    with pytest.raises(ValueError, match="attribution_texts is -1; expected a count"):
        explain(None, None, attribution_texts=-1)  # refused before the prompt or the readout is touched
    with pytest.raises(ValueError, match="trigger_tokens is -5; expected a count"):
        explain(None, None, trigger_tokens=-5)
    monkeypatch.setenv("PROBE_THREADS", "-1")
    assert main(["report", str(tmp_path / "p.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "PROBE_THREADS is '-1'; expected a positive number of threads" in err[0]


def test_dashboard__serves_with_streamlits_magic_off(monkeypatch, tmp_path):
    import os

    seen = {}
    monkeypatch.setattr(os, "execv", lambda path, command: seen.setdefault("command", command))
    (tmp_path / "runs").mkdir()
    main(["dashboard", str(tmp_path / "runs"), "--no-demo"])
    command = seen["command"]  # a bare string in a page is never drawn, whatever the AST check misses
    assert command[command.index("--runner.magicEnabled") + 1] == "false"


MISSING = ["report /no/such/p.npy", "drift /no/such/run", "compare /no/such/a /no/such/b", "explain /no/such/run"]


@pytest.mark.parametrize("argv", MISSING)
def test_cli__a_missing_path_is_one_line_before_torch_loads(argv):
    # in a fresh process: the check runs before any heavy import (the test's own process has torch already)
    code = (
        "import sys\nfrom probe.cli.parser import main\n"
        f"rc = main({argv.split()!r})\nprint(rc, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["2", "False", "False"], run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "/no/such/" in lines[0] and "does not exist (expected: " in lines[0]


def test_cli__python_dash_m_with_a_missing_path_exits_2_in_one_line():
    run = subprocess.run(
        [sys.executable, "-m", "probe", "report", "/nonexistent"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "probe report: error: prompt '/nonexistent' does not exist (expected: PEFT adapter folder, .safetensors, "
        ".pt/.pth, .npy, or a probe run folder)"
    ]


@pytest.mark.slow
def test_dashboard__serves_at_once_and_trains_the_demo_beside_it_stopping_with_it(tmp_path):
    """On an empty runs folder the server answers before any demo run has finished (it trained all three first,
    13 minutes of silence), the demo trains in a child whose runs appear as it goes, and stopping the server stops
    that child too (a signal to a parent does not reach its child by itself)."""
    import os
    import signal
    import socket
    import time
    import urllib.request

    import psutil

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runs = tmp_path / "runs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "probe", "dashboard", str(runs), "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.5)
        finished = [m for m in runs.glob("*/manifest.json") if '"finished"' in m.read_text()]
        assert finished == []  # it served before the demo was done
        trainers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "demo" in " ".join(c.cmdline())]
        assert len(trainers) == 1
        while not list(runs.glob("*/snapshots/step-*.safetensors")):  # the first run's snapshots land as it goes
            assert trainers[0].is_running() and time.monotonic() < deadline + 120, runs / ".probe-demo.log"
            time.sleep(1)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        _, alive = psutil.wait_procs(trainers, timeout=30)
        assert alive == []  # the demo stopped with the server
    finally:
        if proc.poll() is None:
            proc.kill()


def test_dashboard__an_empty_folder_starts_the_demo_and_the_server_before_torch_is_imported(tmp_path):
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "import probe.cli.dashboard as dashboard\n"
        "dashboard.train_demo_beside = lambda folder: print('demo into', folder)\n"
        "def execv(path, command):\n"
        "    print('torch imported:', 'torch' in sys.modules)\n"
        "    print('watcher:', command[command.index('--server.fileWatcherType') + 1])\n"
        "    sys.exit(0)\n"
        "os.execv = execv\n"
        "from probe.cli.parser import main\n"
        f"main(['dashboard', {str(tmp_path / 'runs')!r}])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert f"demo into {tmp_path / 'runs'}" in out  # a folder that does not exist yet holds no runs
    assert "torch imported: False" in out and "watcher: none" in out


def test_cli__out_s_suffix_says_the_format_unless_format_is_given(demo_runs, tmp_path, capsys):
    """``probe report RUN --out rep.json`` wrote markdown into rep.json (errors.md 210)."""
    run = str(demo_runs / "class-label")
    assert main(["report", run, "--out", str(tmp_path / "rep.json")]) == 0
    assert json.loads((tmp_path / "rep.json").read_text())["positions"]
    assert main(["report", run, "--out", str(tmp_path / "rep.csv")]) == 0
    assert (tmp_path / "rep.csv").read_text().startswith("position,rank,")
    assert main(["report", run, "--out", str(tmp_path / "rep.json.md"), "--format", "json"]) == 0
    assert json.loads((tmp_path / "rep.json.md").read_text())["positions"]
    assert main(["report", run, "--out", str(tmp_path / "rep.txt")]) == 0
    assert (tmp_path / "rep.txt").read_text().startswith("# Nearest tokens")
