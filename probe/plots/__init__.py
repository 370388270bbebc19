"""Plotly figure builders: tidy data in, ``go.Figure`` out. Nothing is shown here, and nothing but plotly
and pandas is needed: the dashboard and the experiments' reports both draw with them.

Every builder is served here on first use (``from probe.plots import drift_curves``), so ``import probe.plots``
loads nothing:

- where a prompt sits: :func:`neighbour_heatmap` (a report's ``to_dataframe()``), :func:`prompt_map` and
  :func:`vocab_cloud` (the vocabulary map), :func:`small_map`;
- how it moved: :func:`drift_curves` and :func:`token_river` (``drift_table``), :func:`loss_curves`,
  :func:`travel_curve`, :func:`prefix_drift_curves` (a prefix's layer, ``prefix_drift``);
- what it does: :func:`importance_bars`, :func:`lens_heatmap`;
- runs side by side: :func:`init_comparison`, :func:`accuracy_bars`;
- saving: :func:`to_html` (a page that opens offline), :func:`download_config` (the toolbar's save button).

A sweep's own figure lives in its package (``probe.experiments.frontier.figure``, ...).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_NAMES = {
    "init_comparison": "bars",
    "importance_bars": "bars",
    "accuracy_bars": "bars",
    "drift_curves": "curves",
    "loss_curves": "curves",
    "travel_curve": "curves",
    "prefix_drift_curves": "curves",
    "token_river": "heatmaps",
    "neighbour_heatmap": "heatmaps",
    "lens_heatmap": "heatmaps",
    "vocab_cloud": "maps",
    "prompt_map": "maps",
    "small_map": "maps",
    "to_html": "export",
    "download_config": "export",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(import_module(f"probe.plots.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'probe.plots' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
