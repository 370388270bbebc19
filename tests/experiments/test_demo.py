"""probe.experiments.demo and the train / drift / compare / demo commands, end to end on short runs."""

from __future__ import annotations

import json

import pytest

from probe.cli.parser import main


@pytest.fixture(scope="module")
def demo_dir(demo_runs):
    return demo_runs


@pytest.mark.slow
def test_demo__trains_three_inits_then_reuses_them(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path), "--steps", "4", "--length", "4", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    manifests = {}
    for init in ("random-uniform", "sampled-vocab", "class-label"):
        manifest = json.loads((tmp_path / init / "manifest.json").read_text())
        assert manifest["status"] == "finished" and manifest["init"] == init and manifest["steps"] == 4
        manifests[init] = manifest
        assert f"| {init}" in out
    assert "discretised_accuracy" in out and "Prompt Waywardness" in out
    assert "-  0: joy" in out  # class-label keeps its labels as neighbours after so few steps
    assert main(args) == 0  # the second time the finished runs are reused, not retrained
    assert capsys.readouterr().out == out
    for init, manifest in manifests.items():
        assert json.loads((tmp_path / init / "manifest.json").read_text())["updated"] == manifest["updated"]


def test_demo__settings_mismatch_needs_force(demo_dir, capsys):
    assert main(["demo", "--out", str(demo_dir), "--steps", "11", "--length", "5", "--no-progress"]) == 2
    assert "--force" in capsys.readouterr().err


def test_cli_drift__csv_and_summary(demo_dir, capsys):
    assert main(["drift", str(demo_dir / "class-label"), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("run,step,position,cos_to_init")
    assert len(lines) == 1 + 2 * 5  # snapshots at 0 and 10, 5 positions
    assert main(["drift", str(demo_dir / "class-label"), "--summary", "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)[0]
    assert summary["init"] == "class-label" and summary["positions"] == 5


def test_cli_compare(demo_dir, capsys):
    from probe.formats.discovery import load_run

    a, b = str(demo_dir / "class-label"), str(demo_dir / "sampled-vocab")
    assert main(["compare", a, b]) == 0
    out = capsys.readouterr().out
    assert "Matched positions" in out and "## What each run's nearest tokens keep" in out
    for target in (a, b):  # each run's row holds its recorded accuracies
        acc = load_run(target).accuracies()
        row = next(line for line in out.splitlines() if line.startswith(f"| {target} |"))
        assert f"| {acc['soft_accuracy']:.3f} | {acc['discretised_accuracy']:.3f} |" in row


def test_cli_report__on_a_run_marks_its_labels(demo_dir, capsys):
    assert main(["report", str(demo_dir / "class-label"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["labels"] == ["joy", "anger", "fear", "sadness"]
    assert data["positions"][0]["label_hits"][0]["label"] == "joy"


@pytest.mark.slow
def test_cli_train__own_csv_each_init(tmp_path, capsys):
    rows = ["text,label"] + [f"i love this {w},pos" for w in "abcdefgh"] + [f"i hate this {w},neg" for w in "abcdefgh"]
    (tmp_path / "mine.csv").write_text("\n".join(rows) + "\n")
    for init in ("random-uniform", "sampled-vocab", "class-label"):
        out = tmp_path / init
        assert (
            main(
                [
                    "train",
                    "--data",
                    str(tmp_path / "mine.csv"),
                    "--init",
                    init,
                    "--length",
                    "3",
                    "--steps",
                    "4",
                    "--snapshot-every",
                    "2",
                    "--out",
                    str(out),
                    "--no-progress",
                ]
            )
            == 0
        )
        assert "3 snapshots" in capsys.readouterr().out


def test_cli_train__errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err
    assert main(["train", "--init", "zeros", "--out", str(tmp_path / "r")]) == 2
    assert "init 'zeros' is not known" in capsys.readouterr().err


def test_comparison_table__gain_retained_is_recomputed_from_the_accuracies(demo_dir, default_model):
    from probe.core.index import VocabIndex
    from probe.experiments.demo import comparison_table
    from probe.formats.discovery import load_run

    runs = [load_run(demo_dir / init) for init in ("random-uniform", "sampled-vocab", "class-label")]
    table = comparison_table(runs, default_model, VocabIndex.for_model(default_model))
    for _, row in table.iterrows():
        soft, nearest, zero = row["soft_accuracy"], row["discretised_accuracy"], row["zero_shot_accuracy"]
        if soft > zero:
            assert row["gain_retained"] == pytest.approx((nearest - zero) / (soft - zero))
        else:
            assert row["gain_retained"] != row["gain_retained"]  # NaN: no gain to keep
