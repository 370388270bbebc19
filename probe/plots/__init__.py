"""Plotly figure builders: tidy data in, ``go.Figure`` out. Nothing is shown here, and nothing but plotly
and pandas is needed: the dashboard and the experiments' reports both draw with them."""
