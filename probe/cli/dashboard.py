"""``probe dashboard``: serve the Streamlit pages; on an empty folder the demo runs train beside the server.

The server is started before torch is imported, so a new user's first page comes in seconds
(bench/dashboard_fresh.md).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import ClassVar

from probe.cli.options import Command, budget_gb_option, budget_minutes_option, option


@dataclass
class Dashboard(Command):
    """Serve the Streamlit dashboard; the process becomes the server, so a signal to it stops the server."""

    name: ClassVar[str] = "dashboard"
    summary: ClassVar[str] = "serve the Streamlit dashboard (the demo runs train beside it if there are none)"

    runs_dir: str | None = option(None, "runs folder (default $PROBE_RUNS_DIR or ./probe-runs)", positional=True)
    host: str = option("127.0.0.1", "address to bind (default localhost only)")
    port: int = option(8501, "port (default 8501)", positive=True)
    no_demo: bool = option(False, "do not train the demo runs when the folder is empty")
    replicate: str | None = option(
        None, "folder of probe replicate reports (default $PROBE_REPLICATE_DIR or ./probe-replicate)"
    )
    frontier: str | None = option(
        None, "folder of a probe frontier report (default $PROBE_FRONTIER_DIR, or the folder above RUNS_DIR)"
    )
    audit: str | None = option(
        None, "folder of a probe audit report (default $PROBE_AUDIT_DIR, or the folder above RUNS_DIR)"
    )
    editable_folders: bool = option(
        False, "let the page change the folders it reads (they are server paths: only for a server you alone use)"
    )
    budget_minutes: float | None = budget_minutes_option(" (the UMAP map's fit: over it the map stays PCA)")
    budget_gb: float | None = budget_gb_option()

    def run(self) -> int:
        import os

        from probe.core.budget import GB_ENV, MINUTES_ENV
        from probe.core.io import default_runs_dir, holds_nothing

        runs_dir = self.runs_dir or str(default_runs_dir())
        for env, budget in ((MINUTES_ENV, self.budget_minutes), (GB_ENV, self.budget_gb)):
            if budget is not None:  # the server's readings (the map's fit) take the budgets from its environment
                os.environ[env] = f"{budget:g}"
        if not self.no_demo and (holds_nothing(runs_dir) or not _finds_runs(runs_dir)):
            train_demo_beside(runs_dir)
            print(
                f"no runs in {runs_dir}: the demo runs train beside the server (log: {runs_dir}/{DEMO_LOG}); the "
                "pages fill in as their snapshots land",
                file=sys.stderr,
            )
        command = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            app_path(),
            "--server.address",
            self.host,
            "--server.port",
            str(self.port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--client.toolbarMode",
            "minimal",
            "--runner.magicEnabled",  # a page shows what it writes; a stray string is never drawn
            "false",
            "--server.fileWatcherType",  # an installed package does not change under the server: no polling
            "none",
            "--",
            "--runs",
            runs_dir,
            *(["--replicate", self.replicate] if self.replicate else []),
            *(["--frontier", self.frontier] if self.frontier else []),
            *(["--audit", self.audit] if self.audit else []),
            *(["--editable-folders"] if self.editable_folders else []),
        ]
        print(f"probe dashboard: http://{self.host}:{self.port}  (runs: {runs_dir}; Ctrl-C to stop)", flush=True)
        sys.stderr.flush()
        # exec, not a child: SIGTERM / SIGINT from a supervisor reach the server itself and stop it
        os.execv(sys.executable, command)
        return 0  # pragma: no cover - exec does not return


def _finds_runs(runs_dir: str) -> bool:
    """Whether a folder with entries holds a readable run (this imports torch: an empty folder never asks)."""
    from probe.formats.discovery import find_runs

    return bool(find_runs(runs_dir))


DEMO_LOG = ".probe-demo.log"
"""Where the demo runs trained beside the dashboard write their progress (in the runs folder)."""


def train_demo_beside(runs_dir: str) -> None:
    """Train the demo runs in a child process while the dashboard serves: the server listens at once, the pages
    follow the runs as they land, and the child is stopped with the server (an interrupted demo resumes the next
    time)."""
    import os

    from probe.core.children import start_beside

    start_beside(["demo", "--out", runs_dir, "--no-progress"], os.path.join(runs_dir, DEMO_LOG))


def app_path() -> str:
    """Path of the Streamlit page inside the installed package (probe/dashboard/app.py)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
    if not path.is_file():
        raise FileNotFoundError(f"the dashboard page {path} is missing from the probe package; reinstall probe")
    return str(path)
