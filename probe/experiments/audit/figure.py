"""The audit figure: per reading, the detection rate on relying runs beside the false-alarm rate on the others
(or, when the verdict is inconclusive, only the verdict)."""

from __future__ import annotations

import plotly.graph_objects as go

from probe.experiments.audit.record import NOT_LEARNED, AuditReport
from probe.plots.style import PALETTE


def audit_figure(report: AuditReport) -> go.Figure:
    """Grouped bars with their Clopper-Pearson intervals; the reading names on the x axis (SVG text). When the
    verdict is inconclusive: no bars, the verdict and its flip rates in their place."""
    names = [g["name"] for g in report.readings]
    fig = go.Figure()
    if not report.conclusive:
        fig.add_annotation(
            text=f"inconclusive: {NOT_LEARNED}<br>no detection or false-alarm rate is given<br>"
            + report.verdict_reason.removeprefix(f"{NOT_LEARNED}: "),
            showarrow=False,
            x=0.5,
            y=0.5,
            xref="paper",
            yref="paper",
        )
        fig.update_layout(title="Audit: inconclusive", xaxis={"visible": False}, yaxis={"visible": False}, height=420)
        return fig
    for key, label, color in (
        ("detection", "detected on relying runs", PALETTE[0]),
        ("false_alarm", "false alarms on the others", PALETTE[1]),
    ):
        rates = [g[f"{key}_rate"] for g in report.readings]
        lows = [g[f"{key}_ci"][0] for g in report.readings]
        highs = [g[f"{key}_ci"][1] for g in report.readings]
        fig.add_trace(
            go.Bar(
                x=names,
                y=rates,
                name=label,
                marker_color=color,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [h - r for h, r in zip(highs, rates, strict=True)],
                    "arrayminus": [r - lo for r, lo in zip(rates, lows, strict=True)],
                },
            )
        )
    marker = report.context.get("marker", "the marker")
    fig.update_layout(
        title=f"Which reading finds the planted marker '{marker}'?",
        barmode="group",
        yaxis={"title": "share of runs", "range": [0, 1.05]},
        height=420,
        margin={"t": 50},
    )
    return fig
