"""probe.plots: figure builders tested on the data they carry, not on pixels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probe.plots.bars import init_comparison
from probe.plots.curves import drift_curves
from probe.plots.heatmaps import neighbour_heatmap, token_river
from probe.plots.maps import prompt_map


@pytest.fixture()
def drift():
    rows = []
    for run in ("a", "b"):
        for step in (0, 10, 20):
            for position in range(3):
                rows.append(
                    {
                        "run": run,
                        "step": step,
                        "position": position,
                        "cos_to_init": 1 - step / 100,
                        "norm": 1.0 + position,
                        "jaccard_prev": 1.0,
                        "top1_cos": 0.5,
                        "l2_to_init": step / 10,
                        "top1_token": f"t{position}{step}",
                    }
                )
    return pd.DataFrame(rows)


def test_token_river__positions_by_steps_with_tokens(drift):
    fig = token_river(drift[drift["run"] == "a"])
    heat = fig.data[0]
    assert np.asarray(heat.z).shape == (3, 3)
    assert list(heat.x) == ["0", "10", "20"]
    assert heat.text[2][1] == "t210"


def test_drift_curves__one_line_per_position_and_a_mean_per_run(drift):
    fig = drift_curves(drift, "cos_to_init", highlight=1)
    assert len(fig.data) == 2 * (3 + 1)
    means = [t for t in fig.data if t.name and t.name.endswith("(mean)")]
    assert [t.name for t in means] == ["a (mean)", "b (mean)"]
    np.testing.assert_allclose(means[0].y, [1.0, 0.9, 0.8])
    widths = [t.line.width for t in fig.data[:3]]
    assert widths == [0.7, 3, 0.7]
    with pytest.raises(ValueError, match="drift metric 'speed' is not known"):
        drift_curves(drift, "speed")


def test_prefix_drift_curves__a_line_per_measure_and_part_keys_solid_values_dashed():
    from probe.plots.curves import PREFIX_DRIFT_METRICS, prefix_drift_curves

    rows = [
        {"step": step, "layer": 1, "part": part, "mean_top1_cosine": 0.3, "on_manifold_share": 0.0,
         "mean_cos_to_first": 1 - step / 10 - (part == "value") / 10, "top1_tokens": f"a · b{step}", "changed_top1": 0}
        for part in ("key", "value")
        for step in (0, 5)
    ]  # fmt: skip
    fig = prefix_drift_curves(pd.DataFrame(rows), title="layer 1")
    assert len(fig.data) == len(PREFIX_DRIFT_METRICS) * 2 and fig.layout.title.text == "layer 1"
    named = {t.name: t for t in fig.data}
    keys, values = named["cosine to the first checkpoint, keys"], named["cosine to the first checkpoint, values"]
    np.testing.assert_allclose(keys.y, [1.0, 0.5])
    np.testing.assert_allclose(values.y, [0.9, 0.4])
    assert (keys.line.dash, values.line.dash) == ("solid", "dash") and list(keys.customdata) == ["a · b0", "a · b5"]


def test_prompt_map__cloud_tracks_and_off_manifold_markers():
    tokens = pd.DataFrame({"token": ["a", "b", "c"], "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 0.0]})
    paths = pd.DataFrame(
        {
            "run": ["r"] * 4,
            "init": ["class-label"] * 4,
            "step": [0, 0, 10, 10],
            "position": [0, 1, 0, 1],
            "x": [0.0, 1.0, 0.5, 1.5],
            "y": [0.0, 0.0, 0.5, 0.5],
            "neighbours": ["a", "b", "a", "c"],
            "top1_cos": [1.0, 1.0, 0.9, 0.1],
            "on_manifold": [True, True, True, False],
        }
    )
    fig = prompt_map(tokens, paths, step=10)
    assert fig.data[0].name == "vocabulary" and list(fig.data[0].text) == ["a", "b", "c"]
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 2 and list(lines[0].x) == [0.0, 0.5]
    markers = [t for t in fig.data[1:] if t.mode == "markers"]
    assert [t.name for t in markers] == ["r", "r (off-manifold)"]
    assert markers[1].marker.symbol == "x" and list(markers[1].x) == [1.5]
    early = prompt_map(tokens, paths, step=0)
    assert [list(t.x) for t in early.data if t.mode == "markers" and t.name == "r"] == [[0.0, 1.0]]


def test_neighbour_heatmap_and_init_comparison():
    table = pd.DataFrame(
        {"position": [0, 0, 1, 1], "rank": [1, 2, 1, 2], "token": ["a", "b", "c", "d"], "cosine": [0.9, 0.8, 0.7, 0.6]}
    )
    heat = neighbour_heatmap(table).data[0]
    assert heat.text[1][0] == "c" and np.asarray(heat.z)[0, 1] == 0.8
    comparison = pd.DataFrame(
        {
            "run": ["x", "y"],
            "soft_accuracy": [0.7, 0.8],
            "discretised_accuracy": [0.5, 0.4],
            "zero_shot_accuracy": [0.5, 0.5],
        }
    )
    fig = init_comparison(comparison)
    assert [t.name for t in fig.data] == ["soft prompt", "discretised", "zero-shot"]
    assert list(fig.data[0].y) == [0.7, 0.8]


def test_plots__every_builder_is_public_and_served_without_loading_plotly():
    import inspect
    import subprocess
    import sys

    import plotly.graph_objects as go

    import probe.plots

    names = [n for n in dir(probe.plots) if not n.startswith("_") and n in probe.plots.__all__]
    assert names == sorted(probe.plots.__all__) and {"drift_curves", "prompt_map", "to_html"} <= set(names)
    for name in names:
        builder = getattr(probe.plots, name)
        assert builder.__module__.startswith("probe.plots.") and callable(builder), name
        returns = inspect.signature(builder).return_annotation
        assert name in ("to_html", "download_config") or returns in (go.Figure, "go.Figure"), name
    builders = {n for m in ("bars", "curves", "heatmaps", "maps", "export") for n in _public(f"probe.plots.{m}")}
    assert builders - {"label_spots"} == set(names)  # every builder of the folder is listed (label_spots: a helper)
    code = "import sys, probe.plots; print('plotly' in sys.modules, len(dir(probe.plots)) > 10)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["False", "True"], run.stderr


def _public(module: str) -> list[str]:
    import importlib
    import inspect

    mod = importlib.import_module(module)
    return [n for n, f in inspect.getmembers(mod, inspect.isfunction) if f.__module__ == module and n[0] != "_"]


def test_plots__a_figure_from_the_package_saves_as_a_page(drift):
    from probe.plots import drift_curves, to_html

    fig = drift_curves(drift, "cos_to_init")
    assert len(fig.data) > 0 and "<html>" in to_html(fig)


def test_builders__what_they_cannot_draw_is_one_line_naming_the_table_they_take():
    """A report object, a table without a column a builder draws, or run.metrics() where loss_curves takes a dict of
    them failed in pandas or plotly (errors.md 204); travel_curve and prefix_drift_curves now have default titles."""
    from probe.plots import loss_curves, travel_curve

    with pytest.raises(TypeError, match=r"neighbour_heatmap takes a report's table \(probe.nearest_tokens"):
        neighbour_heatmap("a report")
    with pytest.raises(
        ValueError, match=r"neighbour_heatmap: the table has no column 'rank' \(the tables have \['a'\]\)"
    ):
        neighbour_heatmap(pd.DataFrame({"a": [1]}))
    with pytest.raises(
        ValueError, match=r"drift_curves: the table has no column 'position'.*drift_table\(run, model\)"
    ):
        drift_curves(pd.DataFrame({"x": [1]}))
    with pytest.raises(TypeError, match=r"loss_curves takes \{run name: run.metrics\(\)\}"):
        loss_curves(pd.DataFrame({"step": [1], "loss": [1.0]}))
    assert len(loss_curves({"r": pd.DataFrame({"step": [1, 2], "loss": [1.0, 0.5]})}).data) == 1
    band = pd.DataFrame({"step": [0, 1], "mean": [1.0, 0.9], "low": [1.0, 0.8], "high": [1.0, 0.95]})
    assert travel_curve(band).layout.title.text == "Cosine to the initial vector"
