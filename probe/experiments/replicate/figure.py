"""The ``probe replicate`` report's figures, drawn from its record
(:class:`probe.experiments.replicate.record.ReplicateReport`)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from probe.core.names import SOFT
from probe.experiments.replicate.record import ReplicateReport


def accuracy_by_length_figure(report: ReplicateReport) -> go.Figure:
    """Test accuracy by prompt length (log axis), one line per init."""
    return px.line(
        pd.DataFrame(report.accuracy, columns=["init", "length", SOFT]),
        x="length",
        y=SOFT,
        color="init",
        markers=True,
        log_x=True,
        title="Test accuracy by prompt length and init",
    )


def repeated_neighbours_figure(report: ReplicateReport) -> go.Figure | None:
    """Share of positions whose top-1 token repeats elsewhere, by length, at init and learned (finding 4)."""
    finding = next((f for f in report.findings if f.number == 4), None)
    if finding is None:
        return None
    return px.bar(
        pd.DataFrame(finding.values["by_length"]),
        x="length",
        y=["initial", "final"],
        barmode="group",
        title="Share of positions whose top-1 token repeats elsewhere",
    )
