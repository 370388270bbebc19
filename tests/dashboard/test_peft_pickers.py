"""The dashboard on PEFT's other prompt kinds: a multitask run read per task (the sidebar's Task picker) and a
prefix read per layer (the Prefix layer picker), each on a tiny random GPT-2 built from its config."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

SCREENS = Path(__file__).resolve().parents[2] / "probe" / "dashboard" / "screens"


def _checkpoints(peft_model, folder: Path, perturb) -> None:
    for step in (0, 5, 10):
        perturb(peft_model, seed=step)
        peft_model.save_pretrained(folder / f"checkpoint-{step}")


@pytest.fixture(scope="module")
def peft_runs(tiny_gpt2_path, tmp_path_factory, perturb) -> Path:
    """runs/multi (a 3-task MULTITASK_PROMPT_TUNING prompt) and runs/prefix (PREFIX_TUNING), three checkpoints each."""
    from peft import MultitaskPromptTuningConfig, PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    runs = tmp_path_factory.mktemp("peft-runs")
    configs = {
        "multi": MultitaskPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3, num_tasks=3, num_ranks=2),
        "prefix": PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3),
    }
    for name, config in configs.items():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_gpt2_path), config)
        _checkpoints(peft_model, runs / name, perturb)
    return runs


@pytest.fixture()
def peft_env(monkeypatch, peft_runs):
    monkeypatch.setenv("PROBE_MAP", "pca")
    monkeypatch.setenv("PROBE_RUNS_DIR", str(peft_runs))
    return peft_runs


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(SCREENS / f"{name}.py"), default_timeout=300)


def test_tokens__the_task_picker_reads_each_tasks_own_prompt(peft_env, tiny_gpt2_path):
    import probe
    from probe.formats.discovery import load_run

    at = _page("tokens").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="task").options == ["0", "1", "2"]
    tables = {}
    for task in (0, 2):
        at.selectbox(key="task").select(task).run()
        assert [s.value for s in at.subheader if s.value.startswith("multi")] == [f"multi · task {task} · step 10"]
        tables[task] = list(at.dataframe[0].value["neighbours"])
    assert tables[0] != tables[2]
    model = probe.load_model(str(tiny_gpt2_path), device="cpu")
    expected = probe.nearest_tokens(load_run(peft_env / "multi").for_task(2).snapshot(10), model, k=5)
    assert tables[2] == [", ".join(f"{n.token} ({n.cosine:.2f})" for n in p.neighbours) for p in expected.positions]


def test_sidebar__a_task_the_runs_lack_in_a_link_is_one_line_and_task_0_is_read(peft_env):
    at = _page("drift")
    at.query_params["task"] = "9"
    at.run()
    assert not at.exception, at.exception
    assert "Task 9 is not a task of these runs; pick one from 0 to 2." in [w.value for w in at.warning]
    assert at.selectbox(key="task").value == 0


def test_compare__a_multitask_run_reads_as_the_chosen_task(peft_env):
    at = _page("compare").run()
    assert not at.exception, at.exception
    travelled = {}
    for task in (0, 1):
        at.selectbox(key="task").select(task).run()
        table = next(d.value for d in at.dataframe if "run" in d.value.columns)
        travelled[task] = float(table.set_index("run").loc["multi", "distance_travelled"])
    assert travelled[0] != pytest.approx(travelled[1])
    assert "Accuracies measured under generate (the model generating the label)." in [c.value for c in at.caption]


@pytest.mark.parametrize("screen", ["drift", "map"])
def test_pages__draw_a_multitask_run_at_any_task(peft_env, screen):
    at = _page(screen).run()
    at.selectbox(key="task").select(1).run()
    assert not at.exception and not at.error, (at.exception, at.error)


def _settled(at: AppTest) -> AppTest:
    """Rerun the page until no reading is still being computed beside it (the prefix's, in a thread)."""
    for _ in range(120):
        if not [i for i in at.info if "being read beside the page" in i.value]:
            return at
        time.sleep(0.5)
        at.run()
    raise AssertionError("the prefix reading never landed")


def _prefix_tables(at: AppTest) -> list:
    return [d.value for d in at.dataframe if d.value["neighbours"].str.count(r"\(").gt(0).all()][1:]  # after multi


def test_tokens__the_layer_picker_reads_each_layers_keys_and_values(peft_env, tiny_gpt2_path):
    import probe
    from probe.formats.prefix import load_prefix

    at = _settled(_page("tokens").run())
    assert not at.exception, at.exception
    assert at.selectbox(key="layer").options == ["0", "1"]
    shown = {}
    for layer in (1, 0):
        at.selectbox(key="layer").select(layer).run()
        _settled(at)
        assert f"prefix · layer {layer} · step 10" in [s.value for s in at.subheader]
        shown[layer] = [list(t["neighbours"]) for t in _prefix_tables(at)]
        assert len(shown[layer]) == 2  # keys, then values
    assert shown[0] != shown[1]
    model = probe.load_model(str(tiny_gpt2_path), device="cpu")
    prefix = load_prefix(peft_env / "prefix" / "checkpoint-10", model_config=model.model.config)
    report = probe.prefix_layers(prefix, model, k=5, layers=[1])
    for part, table in zip(("key", "value"), shown[1], strict=True):
        expected = [
            ", ".join(f"{n.token} ({n.cosine:.2f})" for n in p.neighbours) for p in report.layer(1, part).positions
        ]
        assert table == expected
    at.selectbox(key="layer").select(1).run()
    keys = report.layer(1, "key").positions
    word = next(n.token.strip("␣") for p in keys for n in p.neighbours if n.token.strip("␣").isalpha())
    near = {p.position for p in keys if any(word.lower() in n.token.lower() for n in p.neighbours)}
    at.text_input(key="token_query").set_value(word).run()
    assert set(_prefix_tables(_settled(at))[0]["position"]) == near != set()


def test_drift__a_prefix_per_layer_over_its_checkpoints(peft_env, tiny_gpt2_path):
    import probe
    from probe.formats.prefix import load_prefix
    from probe.readings.prefix_drift import prefix_drift

    at = _settled(_page("drift").run())
    at.selectbox(key="layer").select(1).run()
    _settled(at)
    assert not at.exception and not at.error, (at.exception, at.error)
    table = next(d.value for d in at.dataframe if "mean_cos_to_first" in d.value.columns)
    assert set(table["layer"]) == {1} and list(table["step"]) == [0, 5, 10, 0, 5, 10]
    model = probe.load_model(str(tiny_gpt2_path), device="cpu")
    found = {
        s: load_prefix(peft_env / "prefix" / f"checkpoint-{s}", model_config=model.model.config) for s in (0, 5, 10)
    }
    expected = prefix_drift(found, model, layers=[1]).to_dataframe()
    assert list(table["top1_tokens"]) == list(expected["top1_tokens"])
    assert table["mean_cos_to_first"].to_numpy() == pytest.approx(expected["mean_cos_to_first"].to_numpy())
    assert table["mean_cos_to_first"].iloc[2] < 0.99  # the prefix moved


def test_sidebar__a_layer_the_prefixes_lack_in_a_link_is_one_line_and_layer_0_is_read(peft_env):
    at = _page("drift")
    at.query_params["layer"] = "5"
    _settled(at.run())
    assert not at.exception, at.exception
    assert "Layer 5 is not a layer of these prefixes; pick one from 0 to 1." in [w.value for w in at.warning]
    assert at.selectbox(key="layer").value == 0
    assert not [w for w in at.warning if w.value.startswith("Skipped prefix")]  # read per layer, not skipped


def test_inspect__a_multitask_adapter_shows_each_task_under_its_own_heading(peft_env, tiny_gpt2_path):
    at = _page("inspect_file").run()
    at.text_input[0].set_value(str(tiny_gpt2_path))
    at.text_input[1].set_value(str(peft_env / "multi" / "checkpoint-10")).run()
    assert not at.exception and not at.error, (at.exception, at.error)
    source = str(peft_env / "multi" / "checkpoint-10")
    assert [s.value for s in at.subheader] == [f"{source} (task {t})" for t in range(3)]
    tables = [list(d.value["neighbours"]) for d in at.dataframe]
    assert len(tables) == 3 and tables[0] != tables[1] != tables[2]


def test_entry__the_pickers_hold_across_pages_and_the_map_draws_the_prefix_at_the_picked_layer(peft_env):
    at = AppTest.from_file(str(SCREENS.parent / "app.py"), default_timeout=300).run()
    at.selectbox(key="task").select(2).run()
    at.selectbox(key="layer").select(1).run()
    at.switch_page("screens/map.py").run()
    assert not at.exception, at.exception
    assert (at.selectbox(key="task").value, at.selectbox(key="layer").value) == (2, 1)
    assert "Prefixes at layer 1: their keys among real tokens' keys there" in [s.value for s in at.subheader]
    at.switch_page("screens/drift.py").run()
    _settled(at)
    assert not at.exception and not at.error, (at.exception, at.error)
    assert "prefix · layer 1" in [s.value for s in at.subheader]


def test_map__a_prefix_is_drawn_at_the_picked_layer_among_real_tokens_keys_or_values(peft_env, tiny_gpt2_path):
    import base64
    import json

    import probe
    from probe.dashboard.prefixes import PrefixRun
    from probe.readings.prefix_map import prefix_map
    from probe.readings.projection import MapConfig

    at = _settled(_page("map").run())
    at.selectbox(key="layer").select(1).run()
    at.radio(key="prefix_part").set_value("value").run()
    _settled(at)
    assert not at.exception and not at.error, (at.exception, at.error)
    assert "Prefixes at layer 1: their values among real tokens' values there" in [s.value for s in at.subheader]
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    figure = next(s for s in specs if "Prefix values at layer 1" in s["layout"]["title"]["text"])
    model = probe.load_model(str(tiny_gpt2_path), device="cpu")
    vmap, _ = prefix_map(model, 1, "value", MapConfig(method="pca"))
    run = PrefixRun(peft_env / "prefix")
    at_last = vmap.transform(run.prefix(10, model).vectors(1, "value"))

    def numbers(axis: dict) -> np.ndarray:  # plotly writes arrays as typed base64
        return np.frombuffer(base64.b64decode(axis["bdata"]), dtype=axis["dtype"])

    positions = [t for t in figure["data"] if t.get("name") != "vocabulary" and isinstance(t.get("x"), dict)]
    drawn = [(a, b) for t in positions for a, b in zip(numbers(t["x"]), numbers(t["y"]), strict=True)]
    for x, y in at_last:  # each position at the last checkpoint is drawn where the layer's map places it
        assert any(abs(x - a) < 1e-4 and abs(y - b) < 1e-4 for a, b in drawn), (x, y)
