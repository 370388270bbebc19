"""probe.experiments.wayward: prompts forced to read as a target do, and the cost is the paired accuracy drop."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from probe.experiments.wayward import UNRELATED, WaywardConfig, render, wayward
from probe.experiments.wayward.record import REQUIRED, WAYWARD_JSON, read_wayward

# strong enough that a few steps move every position onto its target
TINY = {"steps": 25, "lr": 0.05, "length": 4, "project_weight": 5.0, "test_size": 60, "bootstrap": 200}


@pytest.fixture(scope="module")
def tiny_wayward(tmp_path_factory, default_model):
    out = tmp_path_factory.mktemp("wayward")
    return out, wayward(WaywardConfig(**TINY), out, progress=False)


@pytest.mark.slow
def test_wayward__the_reading_goes_where_it_is_forced(tiny_wayward):
    out, report = tiny_wayward
    data = json.loads((out / WAYWARD_JSON).read_text())
    assert [t["target"] for t in data["targets"]] == ["text", "labels"]
    assert data["targets"][0]["text"] == UNRELATED[0]
    assert data["targets"][1]["text"] == "anger fear sadness joy"  # feelings' labels, each moved one place
    for t in data["targets"]:
        assert set(REQUIRED) <= set(t)
        assert t["reads_as_target"] >= 0.75, t  # the forced runs read as their targets ...
    assert data["targets"][0]["unconstrained_reads_as_target"] == 0.0  # ... the unconstrained one does not
    assert report.targets[0]["reading"].split()[:4] == ["the", "old", "lighthouse", "keeper"]
    assert read_wayward(out / WAYWARD_JSON).to_dict() == report.to_dict()
    text = (out / "wayward.md").read_text()
    assert text == render(report) and text.rstrip().endswith(report.conclusion.rstrip())
    assert "its nearest tokens alone are no evidence of what it does" in report.conclusion


@pytest.mark.slow
def test_wayward__the_cost_is_a_plain_paired_difference(tiny_wayward, default_model):
    from probe import load_run
    from probe.readings.explain.readout import Readout

    out, report = tiny_wayward
    free, text = load_run(out / "runs" / "free-s0"), load_run(out / "runs" / "text-s0")
    readout = Readout.from_run(free, default_model)
    test = readout.splits.test
    right = {}
    for name, run in (("free", free), ("text", text)):
        scores = readout.scores(run.latest_prompt().vectors, test)
        right[name] = scores.argmax(1) == np.asarray(test.targets)
    row = report.targets[0]
    assert row["soft_accuracy"] == pytest.approx(right["text"].mean())
    assert report.free_accuracy == pytest.approx(right["free"].mean())
    assert row["cost"] == pytest.approx(right["free"].mean() - right["text"].mean())
    low, high = row["cost_ci"]
    assert low <= row["cost"] <= high


def test_wayward__bad_settings_are_refused():
    with pytest.raises(ValueError, match="projection weight"):
        WaywardConfig(project_weight=-1.0)
    with pytest.raises(ValueError, match="nothing would pull"):
        WaywardConfig(project_weight=0.0)
    with pytest.raises(ValueError, match="target text is empty"):
        WaywardConfig(text="  ")


def test_wayward_cli__a_text_with_no_usable_tokens_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "w"
    done = subprocess.run(
        [sys.executable, "-m", "probe", "wayward", "--text", "[SEP] [CLS]", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no usable tokens" in lines[0], done.stderr
    assert not out.exists()
