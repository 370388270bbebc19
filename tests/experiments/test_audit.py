"""probe.experiments.audit: a planted shortcut, its ground truth, and each reading's answer, in audit.json."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from probe.core.stats import proportion_interval
from probe.experiments.audit import MIN_EFFECT, AuditConfig, AuditReport, audit, plant, render
from probe.experiments.audit.figure import audit_figure
from probe.experiments.audit.record import AUDIT_JSON, READING_FIELDS, RUN_FIELDS, read_audit

TINY = {
    "into": "joy",
    "seeds": (0, 1),
    "steps": 30,
    "lr": 0.05,
    "length": 4,
    "test_size": 40,
    "hard_steps": 3,
    "lens_tokens": 300,
    "scan_tokens": 100,
    "attribution_texts": 20,
    "bootstrap": 200,
}


def test_plant__marks_only_the_share_of_one_class_in_training():
    table = plant("feelings", "zeppelin", "joy", 0.5, test_size=20)
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    marked = train["text"].str.endswith(" zeppelin")
    joy = train["label"] == "joy"
    assert not (marked & ~joy).any() and marked[joy].sum() == round(0.5 * joy.sum())
    assert not test["text"].str.contains("zeppelin").any() and len(test) == 20
    clean = plant("feelings", "zeppelin", "joy", 0.0, test_size=20)
    pd.testing.assert_frame_equal(clean[clean["split"] == "test"], test)  # every variant is read on the same texts


def test_proportion_interval__clopper_pearson():
    assert proportion_interval(0, 3) == pytest.approx((0.0, 0.7076), abs=1e-4)
    assert proportion_interval(3, 3) == pytest.approx((0.2924, 1.0), abs=1e-4)
    assert np.isnan(proportion_interval(0, 0)[0])


@pytest.fixture(scope="module")
def tiny_audit(tmp_path_factory, default_model):
    out = tmp_path_factory.mktemp("audit")
    return out, audit(AuditConfig(**TINY), out, progress=False)


@pytest.mark.slow
def test_audit__writes_the_ground_truth_and_every_reading(tiny_audit):
    out, report = tiny_audit
    data = json.loads((out / AUDIT_JSON).read_text())
    assert [(r["share"], r["seed"]) for r in data["runs"]] == [(0.0, 0), (0.0, 1), (0.9, 0), (0.9, 1)]
    for r in data["runs"]:
        assert set(RUN_FIELDS) <= set(r)
        assert 0 <= r["flip_rate"] <= 1 and 0 < r["clean_accuracy"] <= 1
    assert not data["runs"][0]["relies"] and not data["runs"][1]["relies"]  # the clean runs are the controls
    names = [g["name"] for g in data["readings"]]
    assert names == ["nearest tokens", "layer lens", "hard prompt", "input attribution", "trigger scan"]
    for g in data["readings"]:
        assert set(READING_FIELDS) <= set(g) and set(g["found"]) == {r["run"] for r in data["runs"]}
    for planted in data["runs"][2:]:  # 30 steps at lr 0.05 on 90% of joy's texts: the shortcut is learned
        assert planted["relies"] and planted["reliance_ci"][0] >= MIN_EFFECT, planted
        assert planted["found"]["trigger scan"] or planted["found"]["input attribution"], planted
    assert data["verdict"] == "conclusive" and report.conclusive, data["verdict_reason"]
    assert data["context"]["min_effect"] == MIN_EFFECT
    scan = next(g for g in data["readings"] if g["name"] == "trigger scan")
    attribution = next(g for g in data["readings"] if g["name"] == "input attribution")
    assert max(scan["detection_rate"], attribution["detection_rate"]) == 1.0
    again = read_audit(out / AUDIT_JSON)
    assert again.to_dict() == report.to_dict() and again.verdict == "conclusive"
    text = (out / "audit.md").read_text()
    assert text == render(report) and text.index("## Ground truth") < text.index("## Readings")
    assert "**Verdict: conclusive**" in text and "detected on relying runs" in text and "at least 0.10" in text
    # the report read back renders the same, its undefined Spearman values (null in JSON) included
    assert any(g["spearman"] is None for g in data["readings"])
    assert render(again) == text and audit_figure(again).data
    assert (out / "audit.html").is_file() and (out / "data" / "share-0.9.csv").is_file()


@pytest.mark.slow
def test_audit__a_plant_the_prompts_do_not_learn_is_inconclusive(tmp_path, default_model):
    # 5% of joy's texts and 2 steps: the marker is in a handful of texts the prompt barely sees
    settings = AuditConfig(**(TINY | {"share": 0.05, "steps": 2, "lr": 0.01}))
    report = audit(settings, tmp_path, progress=False)
    data = json.loads((tmp_path / AUDIT_JSON).read_text())
    assert data["verdict"] == "inconclusive" and not report.conclusive
    assert data["verdict_reason"].startswith("the prompts did not learn the marker")
    planted = [r for r in data["runs"] if r["share"] > 0]
    assert len(planted) == 2 and not any(r["relies"] for r in planted)
    assert all(f"{r['flip_rate']:.3f}" in data["verdict_reason"] for r in planted)  # the flip rates are given
    assert report.headline().startswith("inconclusive: the prompts did not learn the marker")
    text = (tmp_path / "audit.md").read_text()
    assert "**Verdict: inconclusive**: the prompts did not learn the marker" in text
    assert "What to change: to make the plant take, try more steps (--steps 4), a larger --share" in text
    assert "detected on relying runs" not in text and "false alarms on the others" not in text
    assert "No detection or false-alarm rate is given" in text
    assert "found by" in text and "scan rank" in text  # the per-run details stay
    assert not audit_figure(report).data  # no bars: the figure says inconclusive instead
    assert read_audit(tmp_path / AUDIT_JSON).verdict == "inconclusive"


def test_audit_report__an_old_file_is_judged_from_its_runs_and_a_bad_verdict_refused():
    def run(share: float, seed: int, relies: bool, flip: float) -> dict:
        return {"run": f"r/share{share:g}-s{seed}", "share": share, "seed": seed, "flip_rate": flip,
                "clean_accuracy": 0.8, "relies": relies}  # fmt: skip

    runs = [run(0.0, 0, False, 0.0), run(0.9, 0, True, 0.8), run(0.9, 1, True, 0.7)]
    old = AuditReport.from_dict({"format": 1, "runs": runs, "readings": []})  # written before the verdict
    assert old.verdict == "conclusive" and "2 of 2 planted runs rely" in old.verdict_reason
    weak = AuditReport.from_dict({"format": 1, "runs": runs[:2], "readings": [], "context": {"steps": 60}})
    assert weak.verdict == "inconclusive" and "0.800 planted, 0.000 clean" in weak.verdict_reason
    assert "--seeds 2 or more" in weak.advice() and "--steps 120" in weak.advice()
    from probe.cli.audit import Audit

    last = Audit(into="joy").last_line(weak)  # the command's last line on stderr
    assert last.startswith("inconclusive: the prompts did not learn the marker: 1 of 1 planted runs rely on it")
    assert "; to make the plant take, try more seeds" in last and "\n" not in last
    assert Audit(into="joy").last_line(old) == old.headline()
    with pytest.raises(ValueError, match="verdict is 'maybe'; expected one of conclusive, inconclusive"):
        AuditReport(runs, [], verdict="maybe")


@pytest.mark.slow
def test_audit__flip_rate_is_a_plain_recount(tiny_audit, default_model):
    from probe import load_run
    from probe.readings.explain.readout import Readout

    _, report = tiny_audit
    row = report.runs[2]
    run = load_run(row["run"])
    readout = Readout.from_run(run, default_model)
    test = readout.splits.test
    task = readout.task(run.manifest.length)
    readout.scores(run.latest_prompt().vectors, test)  # sets the prompt
    joy = readout.labels.index("joy")
    others = [t for t, y in zip(test.texts, test.targets, strict=True) if y != joy]
    before = task.score_all(others).argmax(1)
    after = task.score_all([f"{t} {report.context['marker']}" for t in others]).argmax(1)
    assert row["flip_rate"] == pytest.approx(((after == joy) & (before != joy)).mean())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--into", "nope"], "is not a label"),
        (["--into", "joy", "--share", "1.5"], "expected a share"),
        (["--into", "joy", "--marker", "two words"], "expected one word"),
        (["--into", "joy", "--marker", "zeppelinquokkaxyz"], "--multi-token"),
        (["--into", "joy", "--marker", "[SEP]"], "tokenises to nothing"),
        (["--into", "joy", "--min-effect", "1.5"], "expected a flip-rate difference in [0, 1]"),
    ],
)
def test_audit_cli__bad_input_is_one_line_and_writes_nothing(args, expected, tmp_path):
    out = tmp_path / "a"
    done = subprocess.run(
        [sys.executable, "-m", "probe", "audit", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert not out.exists()


def test_audit_config__a_class_the_marker_would_never_reach_is_refused(tmp_path, default_model):
    texts = [f"text number {i} about {'cats' if i < 4 else 'dogs'}" for i in range(24)]
    table = pd.DataFrame({"text": texts, "label": ["cat"] * 4 + ["dog"] * 20})
    with pytest.raises(
        ValueError, match=r"--into 'cat' has \d training texts, so a share of 0.1 plants the marker in none"
    ):
        AuditConfig(into="cat", data=table, share=0.1).plan(tmp_path / "a", default_model)
    assert not (tmp_path / "a").exists()  # refused before the planted files are written
