"""Each dashboard page runs on its own (``AppTest.from_file`` on its module) and through the entry at its own URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

DASHBOARD = Path(__file__).resolve().parents[2] / "probe" / "dashboard"
SCREENS = sorted(p.name for p in (DASHBOARD / "screens").glob("[!_]*.py"))


@pytest.fixture()
def runs_env(monkeypatch, demo_runs):
    monkeypatch.setenv("PROBE_MAP", "pca")
    monkeypatch.setenv("PROBE_RUNS_DIR", str(demo_runs))
    return demo_runs


def test_pages__every_page_module_is_routed():
    from probe.dashboard.app import PAGE_LIST

    assert sorted(name for name, _, _ in PAGE_LIST) == SCREENS
    assert len({url for _, _, url in PAGE_LIST}) == len(PAGE_LIST)


@pytest.mark.parametrize("screen", SCREENS)
def test_page__runs_alone_with_its_own_sidebar(runs_env, screen):
    at = AppTest.from_file(str(DASHBOARD / "screens" / screen), default_timeout=300).run()
    assert not at.exception, at.exception
    assert at.slider(key="k").value == 5  # the page drew the shared sidebar itself


def test_page__tokens_alone_shows_each_run(runs_env):
    at = AppTest.from_file(str(DASHBOARD / "screens" / "tokens.py"), default_timeout=300).run()
    assert [s.value for s in at.subheader if " · step " in s.value] == [
        "class-label · step 10",
        "random-uniform · step 10",
        "sampled-vocab · step 10",
    ]
    at.slider(key="k").set_value(2).run()
    assert at.dataframe[0].value["neighbours"].str.count(r"\(").eq(2).all()


def test_entry__switches_pages_and_keeps_the_sidebar(runs_env):
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=300).run()
    at.slider(key="k").set_value(3).run()
    at.switch_page("screens/compare.py").run()
    assert not at.exception
    assert at.slider(key="k").value == 3  # the shared widget kept its value across pages
    assert any("run" in d.value.columns and "soft_accuracy" in d.value.columns for d in at.dataframe)
    assert [t.value for t in at.main.title] == ["probe: soft prompts, readable"]  # one title, drawn once


def test_entry__the_first_visit_overview_gives_way(runs_env):
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=300).run()
    overview = [d for d in at.dataframe if "status" in d.value.columns]
    assert overview == []  # drawn while the model loads, emptied once the page is complete
    assert [t.value for t in at.main.title] == ["probe: soft prompts, readable"]


def test_frontier__choosing_a_run_shows_it_on_every_page(runs_env, tmp_path, monkeypatch):
    from probe.core.io import atomic_write_json
    from probe.experiments.frontier.record import FRONTIER_JSON, FrontierReport

    def row(name, weight, soft, gain):  # the page's own logic is under test here, not the measurement
        return {
            "run": str(runs_env / name), "weight": weight, "seed": 0, "soft_accuracy": soft,
            "discretised_accuracy": 0.5, "agreement": 0.6, "kl": 0.3, "gain_retained": gain, "pareto": True,
        }  # fmt: skip

    report = FrontierReport(0.4, [row("class-label", 0.0, 0.8, 0.1), row("random-uniform", 1.0, 0.6, 0.9)])
    atomic_write_json(tmp_path / FRONTIER_JSON, report.to_dict())
    monkeypatch.setenv("PROBE_FRONTIER_DIR", str(tmp_path))
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=300).run()
    at.switch_page("screens/frontier.py").run()
    assert not at.exception, at.exception
    assert list(at.dataframe[-1].value["run"]) == ["class-label", "random-uniform"]
    assert at.selectbox(key="frontier-open").options == ["class-label", "random-uniform"]
    at.selectbox(key="frontier-open").select("random-uniform").run()
    assert at.multiselect(key="runs").value == ["random-uniform"]
    at.switch_page("screens/compare.py").run()
    assert list(next(d for d in at.dataframe if "run" in d.value.columns).value["run"]) == ["random-uniform"]


def test_audit__shows_the_ground_truth_then_the_readings(runs_env, tmp_path, monkeypatch):
    from probe.core.io import atomic_write_json
    from probe.experiments.audit.record import AUDIT_JSON, AuditReport

    runs = [  # the page's layout is under test here, not the measurement
        {"run": "a/share0-s0", "share": 0.0, "seed": 0, "flip_rate": 0.01, "flip_ci": [0.0, 0.03],
         "clean_accuracy": 0.8, "relies": False},
        {"run": "a/share0.9-s0", "share": 0.9, "seed": 0, "flip_rate": 0.2, "flip_ci": [0.15, 0.25],
         "clean_accuracy": 0.78, "relies": True},
        {"run": "a/share0.9-s1", "share": 0.9, "seed": 1, "flip_rate": 0.3, "flip_ci": [0.25, 0.35],
         "clean_accuracy": 0.77, "relies": True},
    ]  # fmt: skip
    readings = [
        {"name": name, "detection_rate": rate, "detection_ci": [0.0, 1.0], "false_alarm_rate": 0.0,
         "false_alarm_ci": [0.0, 0.98], "spearman": 1.0, "found": {}}
        for name, rate in (("nearest tokens", 0.0), ("trigger scan", 1.0))
    ]  # fmt: skip
    report = AuditReport(runs, readings, context={"marker": "zeppelin", "into": "business", "shares": [0, 0.9]})
    atomic_write_json(tmp_path / AUDIT_JSON, report.to_dict())
    monkeypatch.setenv("PROBE_AUDIT_DIR", str(tmp_path))
    at = AppTest.from_file(str(DASHBOARD / "screens" / "audit.py"), default_timeout=300).run()
    assert not at.exception, at.exception
    truth, found = at.dataframe[0].value, at.dataframe[1].value
    assert list(truth["relies"]) == ["no", "yes", "yes"]
    assert list(truth["run"]) == ["share0-s0", "share0.9-s0", "share0.9-s1"]
    assert list(found["reading"]) == ["nearest tokens", "trigger scan"]
    assert [s.value for s in at.subheader][:2] == [
        "Ground truth: does each run rely on the marker?",
        "Which reading finds it?",
    ]
    assert not at.warning

    # one relying run of two: inconclusive, the flip rates and what to change, and no rate shown as a finding
    runs[2] = runs[2] | {"relies": False, "flip_rate": 0.01}
    runs = [r | {"steps": 120, "stopped": "budget spent"} for r in runs]  # trained on to the budget, in vain
    context = {"marker": "zeppelin", "into": "business", "shares": [0, 0.9], "steps": 60, "max_steps": 120}
    context["rounds"] = [{"steps": s, "relying": 1, "planted": 2, "flip_rates": {}} for s in (60, 120)]
    weak = AuditReport(runs, readings, context=context)
    atomic_write_json(tmp_path / AUDIT_JSON, weak.to_dict())
    at = AppTest.from_file(str(DASHBOARD / "screens" / "audit.py"), default_timeout=300).run()
    assert not at.exception, at.exception
    warning = at.warning[0].value
    assert "inconclusive: the prompts did not learn the marker" in warning and "0.200, 0.010 planted" in warning
    assert "To make the plant take" in warning and "--max-steps 240" in warning
    training = " ".join(c.value for c in at.caption)
    assert "Training: every run trained 120 steps (continued from 60; budget 120): stopped because the step" in training
    assert list(at.dataframe[0].value["steps"]) == [120, 120, 120]
    assert "Which reading finds it?" not in [s.value for s in at.subheader]
    assert all("detection rate" not in d.value.columns for d in at.dataframe)


def test_entry__every_page_shows_nothing_above_its_title(monkeypatch, tmp_path):
    # Streamlit's magic draws any bare string in a page script (an attribute docstring in app.py drew developer
    # notes above the title of every page); an empty folder keeps this cheap, the AST check covers the rest
    from streamlit.testing.v1.element_tree import Title

    from probe.dashboard.app import PAGE_LIST

    monkeypatch.setenv("PROBE_RUNS_DIR", str(tmp_path))
    at = AppTest.from_file(str(DASHBOARD / "app.py"), default_timeout=300).run()
    for name, _, _ in PAGE_LIST:
        at.switch_page(f"screens/{name}").run()
        assert not at.exception, (name, at.exception)
        above = []
        for node in at.main:
            if isinstance(node, Title):
                break
            above += [repr(node.value)] if isinstance(getattr(node, "value", None), str) and node.value else []
        assert above == [], f"{name} shows text above its title"
        assert [t.value for t in at.main.title][:1] == ["probe: soft prompts, readable"]


def _explained_run(tmp_path, task: str | None = None):
    """A folder of tensor files by step (a run: no training needed) with an explain record measured under ``task``."""
    import numpy as np

    from probe.formats.explain_record import ExplainRecord, ImportanceTable, PositionImportance
    from probe.formats.hard_prompt import HardPrompt
    from probe.formats.lens_record import LayerLens
    from probe.readings.explain.record import save_explain

    run = tmp_path / "runs" / "my-loop"
    run.mkdir(parents=True)
    np.save(run / "step-10.npy", np.random.default_rng(0).normal(size=(6, 384)).astype(np.float32))
    positions = []
    for i in range(6):
        values: dict = {"position": i, "nearest_token": "joy", "rank": i + 1}
        for v in ("removed", "nearest", "mean"):
            values |= {f"{v}_accuracy": 0.5, f"{v}_loss": 1.0, f"{v}_drop": 0.1, f"{v}_drop_ci": (0.0, 0.2)}
        positions.append(PositionImportance(**values))
    lens = LayerLens(rows=[], input_tokens=[], holds_until=[0] * 6, layers=2, texts=0, task=task)
    importance = ImportanceTable(0.75, 0.5, 8, positions, 10, task=task)
    tokens = ["outlets", "##koff", "org", "court", "sincere", "##qi"]
    hard = HardPrompt(
        model="default", token_ids=list(range(10, 16)), tokens=tokens, text="outletskoff org court sincereqi",
        hard_prompt_accuracy=0.5, soft_accuracy=0.75, discretised_accuracy=0.5, zero_shot_accuracy=0.25,
        holdout_accuracy=0.5, start_holdout_accuracy=0.25, changed_positions=2, steps=10, best_step=5, seed=0,
    )  # fmt: skip
    save_explain(ExplainRecord(str(run), 10, "default", importance, hard, lens), run)
    return run


def test_explain__shows_the_hard_prompt_as_its_tokens(monkeypatch, tmp_path):
    _explained_run(tmp_path)
    monkeypatch.setenv("PROBE_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(DASHBOARD / "screens" / "explain.py"), default_timeout=300).run()
    assert not at.exception, at.exception
    hard = [m.value for m in at.markdown if m.value.startswith("Hard prompt")]
    assert hard == [
        "Hard prompt (2 positions changed from the nearest tokens): `outlets · ##koff · org · court · sincere · ##qi` "
        "(decoded: `outletskoff org court sincereqi`)"
    ]
    assert "Measured under a task the record does not name (written before probe recorded it)." in [
        c.value for c in at.caption
    ]


@pytest.mark.parametrize("screen", ["explain.py", "lens.py"])
def test_explain__every_figure_says_the_objective_it_measured(monkeypatch, tmp_path, screen):
    _explained_run(tmp_path, task="verbaliser")
    monkeypatch.setenv("PROBE_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(DASHBOARD / "screens" / screen), default_timeout=300).run()
    assert not at.exception, at.exception
    assert "Measured under verbaliser (the label tokens' scores at an output marker)." in [c.value for c in at.caption]


@pytest.mark.slow
def test_explain__compute_now_runs_probe_explain_beside_the_server_and_shows_its_estimate(
    monkeypatch, tmp_path, demo_runs
):
    """A run with no reading: the Explain page offers to compute it, starts ``probe explain`` in a child process,
    and shows the estimate the command prints first, then its progress."""
    import shutil
    import time

    from probe.dashboard import jobs

    runs = tmp_path / "runs"
    shutil.copytree(demo_runs / "class-label", runs / "class-label")
    monkeypatch.setenv("PROBE_RUNS_DIR", str(runs))
    at = AppTest.from_file(str(DASHBOARD / "screens" / "explain.py"), default_timeout=300).run()
    assert not at.exception, at.exception
    assert any("Not measured yet" in i.value for i in at.info)
    at.button(key="explain-class-label").click().run()
    job = jobs._jobs()[str(runs / "class-label")]
    try:
        log = runs / "class-label" / jobs.EXPLAIN_LOG
        deadline = time.time() + 240
        while "about" not in (log.read_text() if log.is_file() else "") and time.time() < deadline:
            assert job.poll() is None, log.read_text()
            time.sleep(1)
        at.run()
        shown = [i.value for i in at.info if i.value.startswith("Computing")]
        assert shown and "explaining 5 positions" in shown[0] and "min on this machine" in shown[0], shown
        assert job.poll() is None  # still working: the page did not wait for it
    finally:
        job.terminate()
        job.wait(timeout=30)
        jobs._jobs().clear()
