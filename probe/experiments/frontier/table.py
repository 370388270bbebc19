"""The Frontier page's data: a ``probe frontier`` report, its table, and each run's name in the sidebar."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from probe.experiments.frontier.record import FRONTIER_JSON, FrontierReport, read_frontier
from probe.experiments.grid import RUNS
from probe.formats.run import Run

COLUMNS = {
    "weight": "λ",
    "seed": "seed",
    "soft_accuracy": "soft",
    "discretised_accuracy": "nearest tokens",
    "reading_gain": "vs λ=0's nearest tokens",
    "agreement": "agreement",
    "kl": "KL",
    "gain_retained": "gain retained",
    "travel": "cos to init",
    "on_manifold": "on-manifold",
    "pareto": "Pareto",
}


@dataclass
class FrontierView:
    """The report, and for each of its runs (in its order) the run's name in the sidebar, or None when the
    sidebar's runs folder does not hold it."""

    report: FrontierReport
    names: list[str | None]

    def table(self) -> pd.DataFrame:
        """One row per run, the columns the format holds (travel, on-manifold and the paired gain are optional)."""
        table = self.report.to_dataframe()
        table["run"] = [Path(r).name for r in table["run"]]
        return table[["run", *(c for c in COLUMNS if c in table)]].rename(columns=COLUMNS)

    def picked(self, points: list[dict]) -> list[str]:
        """The sidebar names of the runs behind clicked points of the figure's first trace."""
        indices = [p.get("point_index", p.get("point_number")) for p in points if p.get("curve_number") == 0]
        return [n for i in indices if isinstance(i, int) and 0 <= i < len(self.names) and (n := self.names[i])]


def frontier_view(folder: str, runs: list[Run]) -> FrontierView | None:
    """The report in ``folder`` matched to ``runs`` (the sidebar's), or None when there is none."""
    if not (Path(folder) / FRONTIER_JSON).is_file():
        return None
    report = read_frontier(Path(folder) / FRONTIER_JSON)
    in_sidebar = {Path(r.path).resolve(): r.name for r in runs}

    def name(run: str) -> str | None:
        for path in (Path(run), Path(folder) / RUNS / Path(run).name):
            if path.resolve() in in_sidebar:
                return in_sidebar[path.resolve()]
        return None

    return FrontierView(report, [name(r["run"]) for r in report.runs])
