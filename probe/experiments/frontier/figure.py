"""The frontier figure: soft accuracy against the faithfulness of the nearest-token reading, one point per run."""

from __future__ import annotations

import plotly.graph_objects as go

from probe.experiments.frontier.record import FrontierReport
from probe.plots.style import PALETTE


def frontier_figure(report: FrontierReport) -> go.Figure:
    """x: the nearest tokens' agreement with the soft prompt; y: soft accuracy; the Pareto line, zero-shot and the
    unconstrained runs marked; each point labelled with its λ (SVG text) and carrying its run in ``customdata``."""
    runs = report.runs
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[r["agreement"] for r in runs],
            y=[r["soft_accuracy"] for r in runs],
            mode="markers+text",
            text=[f"λ={r['weight']:g}" for r in runs],
            textposition="top center",
            marker={
                "size": 11,
                "color": [r["weight"] for r in runs],
                "colorscale": "Viridis",
                "symbol": ["diamond" if r["weight"] == 0 else "circle" for r in runs],
                "colorbar": {"title": "λ"},
                "line": {"width": 1, "color": "black"},
            },
            customdata=[[r["run"], r["gain_retained"], r["discretised_accuracy"]] for r in runs],
            hovertemplate="%{customdata[0]}<br>agreement %{x:.2f}, soft %{y:.3f}, nearest tokens %{customdata[2]:.3f}, "
            "gain retained %{customdata[1]:.2f}<extra></extra>",
            name="runs (diamond: unconstrained, λ=0)",
        )
    )
    pareto = sorted((r for r in runs if r["pareto"]), key=lambda r: r["agreement"])
    fig.add_trace(
        go.Scatter(
            x=[r["agreement"] for r in pareto],
            y=[r["soft_accuracy"] for r in pareto],
            mode="lines",
            line={"color": PALETTE[1], "width": 2},
            name="Pareto set",
        )
    )
    if report.hard_prompts:  # the search's hard prompts: their run's soft accuracy, read by them (SVG text labels)
        start = next((r for r in runs if r["run"] == report.hard_prompts[0]["run"]), None)
        y = start["soft_accuracy"] if start else None
        fig.add_trace(
            go.Scatter(
                x=[h["agreement"] for h in report.hard_prompts],
                y=[y] * len(report.hard_prompts),
                mode="markers+text",
                text=[f"search L={h['length']}" for h in report.hard_prompts],
                textposition="bottom center",
                marker={"size": 12, "symbol": "star", "color": PALETTE[2], "line": {"width": 1, "color": "black"}},
                customdata=[[h["length"], h["accuracy"], h["gain_retained"]] for h in report.hard_prompts],
                hovertemplate="hard prompt of %{customdata[0]} tokens: agreement %{x:.2f}, accuracy "
                "%{customdata[1]:.3f}, gain retained %{customdata[2]:.2f}<extra></extra>",
                name="real-token prompts by length (exact search from the best start)",
            )
        )
    fig.add_hline(
        y=report.zero_shot_accuracy, line_dash="dot", annotation_text="zero-shot", annotation_position="bottom right"
    )
    free = [r for r in runs if r["weight"] == 0]
    if free:  # the unconstrained runs' mean, named in SVG text
        fig.add_annotation(
            x=sum(r["agreement"] for r in free) / len(free),
            y=sum(r["soft_accuracy"] for r in free) / len(free),
            text="unconstrained",
            showarrow=True,
            arrowhead=2,
            ax=40,
            ay=30,
        )
    fig.update_layout(
        title="Soft accuracy against the faithfulness of its nearest tokens",
        xaxis_title="agreement: test rows where the nearest tokens predict what the soft prompt predicts",
        yaxis_title="soft prompt test accuracy",
        height=460,
        margin={"t": 50},
    )
    return fig
