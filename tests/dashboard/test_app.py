"""app.py with Streamlit's AppTest: the runs view, linked controls, and the empty and error states."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "probe" / "dashboard" / "app.py")


@pytest.fixture()
def app_env(monkeypatch):
    monkeypatch.setenv("PROBE_MAP", "pca")  # UMAP is covered by test_projection and the browser test

    def start(runs_dir, tab: str | None = None) -> AppTest:
        monkeypatch.setenv("PROBE_RUNS_DIR", str(runs_dir))
        at = AppTest.from_file(APP, default_timeout=300)
        if tab:  # only the open tab is computed; a link opens it
            at.query_params["tab"] = tab
        return at.run()

    return start


def test_app__empty_runs_folder_says_how_to_make_runs(app_env, tmp_path):
    at = app_env(tmp_path)
    assert not at.exception
    assert any("probe demo" in info.value for info in at.info)


def test_app__shows_each_run_with_its_nearest_tokens(app_env, demo_runs, default_model):
    from probe import load_run, nearest_tokens

    at = app_env(demo_runs)
    assert not at.exception
    titles = [s.value for s in at.subheader if " · step " in s.value]
    assert titles == ["class-label · step 10", "random-uniform · step 10", "sampled-vocab · step 10"]
    table = at.dataframe[0].value
    expected = nearest_tokens(load_run(demo_runs / "class-label").latest_prompt(), default_model, k=5)
    assert table["top1"].tolist() == [p.neighbours[0].token for p in expected.positions]


def test_app__k_slider_and_run_selection_change_the_view(app_env, demo_runs):
    at = app_env(demo_runs)
    at.sidebar.slider[0].set_value(2).run()
    assert not at.exception
    assert at.dataframe[0].value["neighbours"].str.count(r"\(").eq(2).all()
    at.sidebar.multiselect[0].set_value(["sampled-vocab"]).run()
    assert [s.value for s in at.subheader if " · step " in s.value] == ["sampled-vocab · step 10"]


def test_app__step_slider_moves_the_table_to_that_snapshot(app_env, demo_runs):
    at = app_env(demo_runs)
    at.sidebar.select_slider[0].set_value(0).run()
    assert not at.exception
    assert at.subheader[0].value == "class-label · step 0"
    assert at.dataframe[0].value["top1"].tolist()[:4] == ["joy", "anger", "fear", "sadness"]


def test_app__token_search(app_env, demo_runs):
    at = app_env(demo_runs)
    at.text_input(key="token_query").input("sadness").run()
    positions = at.dataframe[0].value["position"].tolist()
    assert 3 in positions and len(positions) < 5


def _runs_with(tmp_path, demo_runs):
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(demo_runs / "class-label", runs / "class-label")
    return runs


def test_app__inspect_a_file_errors_are_shown_not_raised(app_env, demo_runs, tmp_path):
    import numpy as np

    runs = _runs_with(tmp_path, demo_runs)
    at = app_env(runs, tab="Inspect a file")
    inputs = [t for t in at.text_input if "runs-folder" in (t.placeholder or "")]
    inputs[0].input(str(runs / "missing.npy")).run()
    assert not at.exception
    assert "does not exist" in at.error[0].value
    np.save(runs / "wrong.npy", np.ones((3, 768), np.float32))
    inputs[0].input(str(runs / "wrong.npy")).run()
    assert "768" in at.error[0].value and "384" in at.error[0].value
    np.save(tmp_path / "outside.npy", np.ones((3, 384), np.float32))  # a server path outside the runs folder
    inputs[0].input(str(tmp_path / "outside.npy")).run()
    assert "outside the runs folder" in at.error[0].value and "Upload the file instead" in at.error[0].value


def test_app__inspect_a_prompt_file(app_env, demo_runs, tmp_path, default_model):
    import numpy as np

    runs = _runs_with(tmp_path, demo_runs)
    ids = default_model.tokenizer.convert_tokens_to_ids(["music", "ocean"])
    np.save(runs / "p.npy", default_model.embeddings_numpy()[ids])
    at = app_env(runs, tab="Inspect a file")
    inputs = [t for t in at.text_input if "runs-folder" in (t.placeholder or "")]
    inputs[0].input(str(runs / "p.npy")).run()
    assert not at.exception
    inspected = [d.value for d in at.dataframe if "top1" in d.value.columns and len(d.value) == 2]
    assert [t["top1"].tolist() for t in inspected] == [["music", "ocean"]]


def test_app__findings_tab_empty_and_with_a_report(app_env, demo_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("PROBE_REPLICATE_DIR", str(tmp_path))
    at = app_env(demo_runs, tab="Findings")
    assert any("probe replicate --quick" in info.value for info in at.info)
    (tmp_path / "report.md").write_text("# Lester et al. (2021), section 7, measured\n\n| # | finding |\n")
    at = app_env(demo_runs, tab="Findings")
    assert not at.exception
    assert any("section 7, measured" in m.value for m in at.markdown)


def test_app__findings_tab_shows_several_reports_side_by_side(app_env, demo_runs, tmp_path, monkeypatch):
    import dataclasses

    from probe.experiments.replicate import Finding

    for name, data, task, estimate in (("a", "ag_news.csv", "cosine", 0.31), ("b", "feelings", "verbaliser", 0.12)):
        folder = tmp_path / name
        folder.mkdir()
        finding = Finding(
            1,
            "Semantic clusters",
            "paper",
            "measured",
            "yes",
            8,
            estimate,
            (estimate - 0.01, estimate + 0.02),
            0.2,
            0.09,
        )
        report = {
            "context": {
                "data": data,
                "task": [task],
                "travel": {"random-uniform": 0.41},
                "steps": [60] if name == "a" else [],
            },
            "findings": [dataclasses.asdict(finding)],
        }
        (folder / "report.json").write_text(json.dumps(report))
        (folder / "report.md").write_text(f"# report {name}\n")
    monkeypatch.setenv("PROBE_REPLICATE_DIR", str(tmp_path))
    at = app_env(demo_runs, tab="Findings")
    assert not at.exception
    table = next(d.value for d in at.dataframe if "finding" in d.value.columns)
    assert list(table.columns) == ["finding", "ag_news · cosine · 60 steps", "feelings · verbaliser"]
    row = table.set_index("finding").loc["1. Semantic clusters"]
    assert row.tolist() == ["yes: 0.310 [0.300, 0.330]; at init 0.200", "yes: 0.120 [0.110, 0.140]; at init 0.200"]
    assert table.set_index("finding").loc["cos to init (1 = did not move)"].tolist() == ["random-uniform 0.41"] * 2
    assert any("# report b" in m.value for m in at.markdown)


@pytest.mark.slow
def test_app__explain_tab_says_how_to_measure_then_shows_the_readings(app_env, demo_runs, tmp_path):
    import shutil

    from probe.cli.parser import main

    runs = tmp_path / "runs"
    shutil.copytree(demo_runs / "class-label", runs / "class-label")
    at = app_env(runs, tab="Explain")
    assert not at.exception
    assert any("probe explain" in info.value for info in at.info)
    args = ["explain", str(runs / "class-label"), "--hard-steps", "2", "--lens-tokens", "1000", "--lens-texts", "2"]
    assert main([*args, "--bootstrap", "50", "--no-progress", "--out", str(tmp_path / "explain.md")]) == 0
    at = app_env(runs, tab="Explain")
    assert not at.exception
    assert "class-label: what the prompt does" in [s.value for s in at.subheader]
    tables = [d.value for d in at.dataframe if "nearest-token drop (faithfulness)" in d.value.columns]
    assert len(tables) == 1 and len(tables[0]) == 5  # one row per position of the 5-position demo prompt
    assert any("hard prompt" in m.value for m in at.markdown)
    assert (runs / "class-label" / "explain" / "step-00000010.json").is_file()  # one file per measured step


def test_app__reads_a_folder_of_tensor_files_by_step_as_a_run(app_env, tmp_path, default_model):
    import numpy as np

    folder = tmp_path / "runs" / "my-loop"
    folder.mkdir(parents=True)
    e = default_model.embeddings_numpy()
    ids = default_model.tokenizer.convert_tokens_to_ids(["science", "music", "river"])
    for step in (0, 50, 100):
        np.save(folder / f"step-{step}.npy", e[ids] + 0.001 * step)
    at = app_env(tmp_path / "runs")
    assert not at.exception
    assert "my-loop · step 100" in [s.value for s in at.subheader]
    table = at.dataframe[0].value
    assert table["top1"].tolist() == ["science", "music", "river"]


def test_app__a_url_restores_the_view(monkeypatch, demo_runs):
    monkeypatch.setenv("PROBE_MAP", "pca")
    monkeypatch.setenv("PROBE_RUNS_DIR", str(demo_runs))
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"runs": ["sampled-vocab"], "step": "0", "k": "2", "highlight": "1"})
    at.run()
    assert not at.exception
    assert [s.value for s in at.subheader if " · step " in s.value] == ["sampled-vocab · step 0"]
    assert at.slider(key="k").value == 2 and at.selectbox(key="highlight").value == 1
    assert at.dataframe[0].value["neighbours"].str.count(r"\(").eq(2).all()  # (the browser test checks the way back)


@pytest.mark.slow
def test_app__side_by_side_has_one_column_per_init_with_seeds_together(app_env, demo_runs, tmp_path):
    import shutil

    from probe.dashboard.views import accuracy_spread, init_columns
    from probe.formats.discovery import load_run

    runs = tmp_path / "runs"
    for name in ("class-label", "random-uniform", "sampled-vocab"):
        shutil.copytree(demo_runs / name, runs / name)
    shutil.copytree(demo_runs / "class-label", runs / "class-label-seed1")  # the same settings: one column
    groups = init_columns([load_run(p) for p in sorted(runs.iterdir())])
    assert list(groups) == ["class-label · p=5", "random-uniform · p=5", "sampled-vocab · p=5"]
    assert [r.name for r in groups["class-label · p=5"]] == ["class-label", "class-label-seed1"]
    spread = accuracy_spread(groups["class-label · p=5"])
    assert (
        list(spread["measure"]) == ["soft_accuracy", "discretised_accuracy", "zero_shot_accuracy"]
        and (spread["sd"] == 0).all()
    )
    at = app_env(runs, tab="Side by side")
    assert not at.exception
    headers = [m.value for m in at.markdown if m.value.startswith("**")]
    assert headers == ["**class-label · p=5** · 2 seeds", "**random-uniform · p=5**", "**sampled-vocab · p=5**"]


def test_app__figures_save_in_the_chosen_format_and_as_html(app_env, demo_runs):
    at = app_env(demo_runs, tab="Drift")
    assert not at.exception
    charts = at.get("plotly_chart")
    assert charts and all(json.loads(c.proto.config)["toImageButtonOptions"]["format"] == "png" for c in charts)
    html_buttons = [b for b in at.get("download_button") if b.proto.label == "HTML"]
    assert len(html_buttons) == len(charts)  # one interactive-HTML download under every figure
    at.selectbox(key="fmt").select("svg").run()
    charts = at.get("plotly_chart")
    assert {json.loads(c.proto.config)["toImageButtonOptions"]["format"] for c in charts} == {"svg"}


def test_plots__download_config_and_html_are_plotlys_own():
    import plotly.graph_objects as go

    from probe.plots import export as plots

    config = plots.download_config("svg", "map")
    assert config["toImageButtonOptions"] == {"format": "svg", "filename": "map", "scale": 2}
    with pytest.raises(ValueError, match="figure format 'pdf' is not one Plotly saves; expected one of png, svg"):
        plots.download_config("pdf", "map")
    page = plots.to_html(go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="trace-a")))
    assert "<html>" in page and "trace-a" in page
    assert 'src="https://' not in page and len(page) > 1_000_000  # plotly.js inlined: it opens offline
