"""probe.experiments.audit: a planted shortcut, its ground truth, and each reading's answer, in audit.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probe.core.stats import proportion_interval
from probe.experiments.audit import MIN_EFFECT, AuditConfig, AuditReport, audit, plant, render
from probe.experiments.audit.continuation import train_until_it_takes
from probe.experiments.audit.figure import audit_figure
from probe.experiments.audit.record import AUDIT_JSON, READING_FIELDS, RUN_FIELDS, read_audit
from probe.experiments.grid import Cost
from probe.formats.discovery import load_run

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
LIGHT_READINGS = {"hard_steps": 1, "lens_tokens": 100, "scan_tokens": 30, "attribution_texts": 5}
"""For tests of the verdict and the rounds, not of what the readings find: the readings at their smallest."""


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
    # the plant took in the steps given: no run was continued, and the report says why training stopped
    assert [(r["steps"], r["stopped"]) for r in data["runs"]] == [(30, "effect held")] * 4
    assert data["context"]["max_steps"] == 120 and [r["steps"] for r in data["context"]["rounds"]] == [30]
    assert data["context"]["rounds"][0]["relying"] == 2 and report.headline().startswith(
        "2 of 4 runs rely on the marker after 30 steps"
    )
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
def test_audit__a_plant_the_prompts_do_not_learn_is_inconclusive_once_the_budget_is_spent(tmp_path, default_model):
    # 5% of joy's texts, 2 steps and a budget of 4: the marker is in a handful of texts the prompt barely sees
    settings = AuditConfig(**(TINY | LIGHT_READINGS | {"share": 0.05, "steps": 2, "lr": 0.01, "max_steps": 4}))
    report = audit(settings, tmp_path, progress=False)
    data = json.loads((tmp_path / AUDIT_JSON).read_text())
    assert data["verdict"] == "inconclusive" and not report.conclusive
    # every run, planted and clean, was trained on to the budget, and the report says so
    assert [(r["steps"], r["stopped"]) for r in data["runs"]] == [(4, "budget spent")] * 4
    assert [load_run(r["run"]).steps[-1] for r in data["runs"]] == [4] * 4
    rounds = data["context"]["rounds"]
    assert [(r["steps"], r["relying"], r["planted"]) for r in rounds] == [(2, 0, 2), (4, 0, 2)]
    assert data["context"]["max_steps"] == 4
    assert rounds[-1]["flip_rates"] == {Path(r["run"]).name: r["flip_rate"] for r in data["runs"]}
    assert data["verdict_reason"].startswith("the prompts did not learn the marker")
    planted = [r for r in data["runs"] if r["share"] > 0]
    assert len(planted) == 2 and not any(r["relies"] for r in planted)
    assert all(f"{r['flip_rate']:.3f}" in data["verdict_reason"] for r in planted)  # the flip rates are given
    assert report.headline().startswith("inconclusive: the prompts did not learn the marker")
    text = (tmp_path / "audit.md").read_text()
    assert "**Verdict: inconclusive**: the prompts did not learn the marker" in text
    assert "What to change: to make the plant take, try more steps (--max-steps 8), a larger --share" in text
    assert "Training: every run trained 4 steps (continued from 2; budget 4): stopped because the step budget" in text
    assert "| share0.05-s1 | 0.05 | 1 | 4 |" in text  # each run's steps in the ground truth
    assert "detected on relying runs" not in text and "false alarms on the others" not in text
    assert "No detection or false-alarm rate is given" in text
    assert "found by" in text and "scan rank" in text  # the per-run details stay
    assert not audit_figure(report).data  # no bars: the figure says inconclusive instead
    assert read_audit(tmp_path / AUDIT_JSON).verdict == "inconclusive"
    from probe.cli.audit import Audit

    last = Audit(into="joy").last_line(report)
    assert "; every run trained 4 steps (continued from 2; budget 4): stopped because" in last and "\n" not in last
    # run again, the audit keeps the continued runs (planned at their steps, nothing retrained)
    again = settings.plan(tmp_path, default_model)
    assert {c.steps for c in again.configs.values()} == {4}
    assert settings.further_cost(again) == Cost(rows=0, steps=0)


@pytest.mark.slow
def test_audit__a_continued_run_equals_the_run_trained_without_a_stop(tmp_path, default_model):
    from probe.training.config import TrainConfig
    from probe.training.trainer import train

    tiny = {"share": 0.05, "steps": 2, "lr": 0.01, "max_steps": 4, "seeds": (0,), "test_size": 20}
    settings = AuditConfig(**(TINY | tiny))
    plan = settings.plan(tmp_path, default_model)
    assert settings.further_cost(plan).steps == 2 * (4 - 2)  # the estimate's "up to": both runs trained on
    grown, runs = train_until_it_takes(plan, lambda configs: _grid(configs, tmp_path, default_model), default_model)
    assert grown.extra["stopped"] == "budget spent" and [r["steps"] for r in grown.extra["rounds"]] == [2, 4]
    for run in runs.values():  # the clean run was trained on with the planted one
        assert run.steps[-1] == 4 and run.manifest.resumed_from == 2 and run.manifest.resumed_exactly is True
    run = runs["share0.05-s0"]
    config = TrainConfig.from_dict(run.manifest.config)
    assert config.steps == 4 and config.snapshot_every == 1  # the planned schedule, only longer
    whole = train(config, tmp_path / "whole", model=default_model, progress=False)
    np.testing.assert_allclose(run.latest_prompt().vectors, whole.latest_prompt().vectors, rtol=0, atol=1e-6)


def _grid(configs, out, model):
    from probe.experiments.grid import run_grid

    return dict(zip(configs, run_grid(configs, out / "runs", model=model), strict=True))


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
    from probe.readings.explain.readout import Readout

    _, report = tiny_audit
    row = report.runs[2]
    run = load_run(row["run"])
    assert run.steps[-1] == row["steps"]  # the final snapshot is the one the report read
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
        (["--into", "joy", "--steps", "10", "--max-steps", "5"], "--max-steps is 5, below --steps 10"),
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


def test_audit_config__a_bad_step_budget_is_refused():
    with pytest.raises(ValueError, match=r"--max-steps is 5, below --steps 10; expected the steps a run may be"):
        AuditConfig(into="joy", steps=10, max_steps=5)
    with pytest.raises(ValueError, match=r"--max-steps is True, below --steps 10"):
        AuditConfig(into="joy", steps=10, max_steps=True)
    with pytest.raises(ValueError, match="continue_factor is 0; expected a whole number from 1"):
        AuditConfig(into="joy", continue_factor=0)
    assert AuditConfig(into="joy", steps=10).most_steps == 40 and AuditConfig.quick(into="joy").most_steps == 120
    assert AuditConfig(into="joy", steps=10, max_steps=10).most_steps == 10  # equal: no continuation


def test_audit_estimate__gives_the_continuation_as_an_up_to(tmp_path, default_model):
    from probe.experiments.audit import SWEEP
    from probe.experiments.sweep import estimate

    settings = AuditConfig(**TINY)  # 4 runs of 30 steps, a budget of 120
    plan = settings.plan(tmp_path, default_model)
    seconds, runs, further = estimate(SWEEP, plan, tmp_path, default_model)
    assert runs == 4 and seconds > 0 and further > 0
    assert settings.further_cost(plan).steps == 4 * (120 - 30)
    assert AuditConfig(**(TINY | {"max_steps": 30})).further_cost(plan) == Cost()  # no continuation: nothing to add


def test_sweeps__a_file_with_its_own_column_names_is_read_by_frontier_wayward_and_audit(tmp_path, default_model):
    """A sweep advised --text-column / --label-column for a file whose columns have other names, then refused them
    as options of other commands (errors.md 209). The planted files keep probe's own columns."""
    import pandas as pd

    from probe.cli.audit import Audit
    from probe.cli.frontier import Frontier
    from probe.core.data import train_test
    from probe.experiments.wayward import WaywardConfig

    rows = train_test("feelings").train
    pd.DataFrame({"review": rows.texts, "feeling": rows.labels}).to_csv(tmp_path / "mine.csv", index=False)
    names = {"text_column": "review", "label_column": "feeling"}
    settings = Frontier(data=str(tmp_path / "mine.csv"), **names).settings()
    assert {c.text_column for c in settings.run_configs().values()} == {"review"}
    wayward = WaywardConfig(data=str(tmp_path / "mine.csv"), **names).checked_run_configs(default_model)
    assert {c.label_column for c in wayward.values()} == {"feeling"}
    audit = Audit(into="joy", data=str(tmp_path / "mine.csv"), out=str(tmp_path / "audit"), **names).settings()
    plan = audit.plan(tmp_path / "audit", default_model)
    planted = pd.read_csv(plan.extra["data_files"][0.9])
    assert list(planted.columns) == ["text", "label", "split"] and (planted["label"] == "joy").sum() > 0
    assert {(c.text_column, c.label_column) for c in plan.configs.values()} == {("text", "label")}
