"""Take the README's dashboard screenshots in a real browser (Debian's Chromium, driven by Playwright).

    python docs/screenshots.py [--runs DIR]

Trains the three demo runs into DIR if they are missing (default: a temporary folder, so no test path shows),
fits the UMAP map, serves ``probe dashboard`` on a free local port and saves docs/dashboard-tokens.png and
docs/dashboard-map.png at the runs' final step. Never runs ``playwright install``: the browser is the
system's ``chromium``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(runs: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PROBE_MAP": "umap", "HF_HUB_OFFLINE": "1"}
    # served from the runs' parent with a relative path, so the page shows "probe-runs", not a temp path
    command = [sys.executable, "-m", "probe", "dashboard", runs.name, "--port", str(port), "--no-demo"]
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(command, cwd=runs.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the dashboard did not start within 120 s")


def _idle(page) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000)
    page.wait_for_timeout(800)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", help="demo runs folder (default: a temporary one, trained here)")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed: apt-get install chromium")
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from probe.core.index import VocabIndex
    from probe.core.models import load_model
    from probe.dashboard.views import neighbour_ids
    from probe.experiments.demo import run_demo
    from probe.readings.projection import MapConfig, fit_map

    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(args.runs) if args.runs else Path(tmp) / "probe-runs"
        runs, _ = run_demo(runs_dir, progress=True)
        model = load_model("default", device="cpu")
        index = VocabIndex.for_model(model)
        fit_map(model, index, MapConfig(), extra_ids=neighbour_ids(runs, index, k=5))  # cached for the page
        final = max(run.steps[-1] for run in runs)
        port = _free_port()
        server = _serve(runs_dir, port)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}")
                page.wait_for_selector(f"text=class-label · step {final}", timeout=180_000)
                _idle(page)
                page.screenshot(path=str(DOCS / "dashboard-tokens.png"))
                page.locator('[data-testid="stSidebarNav"]').get_by_text("Map", exact=True).click()
                page.wait_for_selector("text=UMAP map of", timeout=120_000)
                _idle(page)
                page.screenshot(path=str(DOCS / "dashboard-map.png"))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"wrote {DOCS / 'dashboard-tokens.png'} and {DOCS / 'dashboard-map.png'}")


if __name__ == "__main__":
    main()
