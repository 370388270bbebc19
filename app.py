"""Thin entry: ``streamlit run app.py -- --runs RUNS_DIR`` serves probe's dashboard.

The page itself lives in the package (probe/dashboard/app.py), so ``pip install probe`` and ``probe dashboard`` need no
checkout. This file only runs it.
"""

import runpy

from probe.cli.dashboard import app_path

runpy.run_path(app_path(), run_name="__main__")
