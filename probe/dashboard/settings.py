"""The folders the dashboard server reads, fixed when it starts: from ``probe dashboard`` (the options it passes
after ``--``) or the environment. The page may change them only when the server was started to allow it: they
are server paths, and the page may be served beyond this machine. Nothing heavy is imported here, so the first
page can use it before torch loads.
"""

from __future__ import annotations

import argparse
import os
import sys


def server_options(argv: list[str] | None = None) -> argparse.Namespace:
    """The options ``probe dashboard`` passes after ``--``: ``--runs``, ``--replicate``, ``--frontier``,
    ``--audit``, ``--editable-folders``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", default=None)
    parser.add_argument("--replicate", default=None)
    parser.add_argument("--frontier", default=None)
    parser.add_argument("--audit", default=None)
    parser.add_argument("--editable-folders", action="store_true")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return args


def runs_dir() -> str:
    """The runs folder: ``--runs``, else ``$PROBE_RUNS_DIR``, else ``probe-runs``."""
    return server_options().runs or os.environ.get("PROBE_RUNS_DIR") or "probe-runs"


def replicate_dir() -> str:
    """The folder of ``probe replicate`` reports: ``--replicate``, else ``$PROBE_REPLICATE_DIR``, else
    ``probe-replicate``."""
    return server_options().replicate or os.environ.get("PROBE_REPLICATE_DIR") or "probe-replicate"


def frontier_dir() -> str:
    """The folder of a ``probe frontier`` report: ``--frontier``, else ``$PROBE_FRONTIER_DIR``, else the folder
    above the runs folder when it holds ``frontier.json`` (``probe dashboard OUT/runs``), else ``probe-frontier``."""
    return _report_dir(server_options().frontier, "PROBE_FRONTIER_DIR", "frontier.json", "probe-frontier")


def audit_dir() -> str:
    """The folder of a ``probe audit`` report: ``--audit``, else ``$PROBE_AUDIT_DIR``, else the folder above the
    runs folder when it holds ``audit.json``, else ``probe-audit``."""
    return _report_dir(server_options().audit, "PROBE_AUDIT_DIR", "audit.json", "probe-audit")


def _report_dir(given: str | None, variable: str, report: str, default: str) -> str:
    chosen = given or os.environ.get(variable)
    if chosen:
        return chosen
    above = os.path.dirname(os.path.abspath(runs_dir()))
    return above if os.path.isfile(os.path.join(above, report)) else default


def folders_editable() -> bool:
    """Whether the page may change the folders it reads (only when the server was started to allow it: they are
    server paths, and the page may be served beyond this machine)."""
    return server_options().editable_folders or os.environ.get("PROBE_EDITABLE_FOLDERS") == "1"
