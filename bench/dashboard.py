"""Dashboard responsiveness on the demo runs (issue 14: reruns under 1 s, a useful first page within 5 s), and a
new user's first start (issue 31: the first page within 15 s, the demo runs complete within 3 minutes).

    python bench/dashboard.py --runs DIR     # DIR holds the three demo runs (probe demo --out DIR)
    python bench/dashboard.py --fresh        # an empty runs folder and an empty probe cache

1. Reruns under Streamlit's AppTest, after a warm-up run: a plain rerun, and reruns after changing k, the
   step, the highlighted position, the runs shown and the map colouring. Median of 5 each.
2. The first page in Debian's Chromium: ``probe dashboard`` with an empty probe cache, so the UMAP map is
   still being fitted in the background. The time runs from the server's health check answering to the runs
   overview (read from the manifests before torch is imported), then to the nearest-token tables.

3. ``--fresh``: ``probe dashboard`` on an empty folder with an empty probe cache, as a new user's first command.
   From the command's start: the server answering, the first page drawn in Chromium (its title), and the three
   demo runs (trained beside the server while that page stays open and follows them) finished, read from their
   manifests.

Prints a markdown table and writes bench/dashboard.md (``--fresh``: bench/dashboard_fresh.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def reruns(runs: Path) -> list[tuple[str, float]]:
    from streamlit.testing.v1 import AppTest

    os.environ["PROBE_RUNS_DIR"] = str(runs)
    os.environ["PROBE_MAP"] = "umap"
    at = AppTest.from_file(str(ROOT / "probe" / "dashboard" / "app.py"), default_timeout=600).run()
    at.run()  # caches warm, as after the first page
    actions = {
        "rerun": lambda: at.run(),
        "k changed": lambda: at.slider(key="k").set_value(3 if at.slider(key="k").value != 3 else 5).run(),
        "step changed": lambda: at.select_slider(key="step").set_value(at.select_slider(key="step").options[0]).run(),
        "position highlighted": lambda: at.selectbox(key="highlight").set_value(1).run(),
        "runs shown changed": lambda: at.multiselect(key="runs").set_value(["class-label"]).run(),
    }
    out = []
    for name, action in actions.items():
        times = []
        for _ in range(5):
            began = time.perf_counter()
            action()
            times.append(time.perf_counter() - began)
            assert not at.exception, at.exception
        out.append((f"rerun: {name}", statistics.median(times)))
        if name == "runs shown changed":
            at.multiselect(key="runs").set_value(at.multiselect(key="runs").options).run()
    return out


def first_page(runs: Path) -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed: apt-get install chromium")
    port = _free_port()
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PROBE_CACHE_DIR": cache, "PROBE_MAP": "umap", "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "probe", "dashboard", str(runs), "--port", str(port), "--no-demo"]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_health(port, time.perf_counter())
            began = time.perf_counter()
            with sync_playwright() as p:
                args = [
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                ]
                browser = p.chromium.launch(executable_path=chromium, args=args)
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}")
                page.wait_for_selector('[role="gridcell"]', state="attached", timeout=120_000)
                useful = time.perf_counter() - began  # the runs overview, read from the manifests
                page.wait_for_selector("text=· step", state="attached", timeout=180_000)
                full = time.perf_counter() - began  # the nearest-token tables, model and index loaded
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return useful, full


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_health(port: int, began: float, limit: float = 120.0) -> float:
    while time.perf_counter() - began < limit:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter() - began
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the server did not answer within {limit:.0f} s")


def _demo_finished(runs: Path) -> bool:
    from probe.formats.discovery import find_runs

    found = find_runs(runs)
    return len(found) == 3 and all(run.status == "finished" for run in found)


def fresh_start() -> list[tuple[str, float, str]]:
    """``probe dashboard`` on an empty folder and cache: server up, first page drawn, demo runs finished."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed: apt-get install chromium")
    port = _free_port()
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as home:
        runs = Path(home) / "probe-runs"
        env = {**os.environ, "PROBE_CACHE_DIR": cache, "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "probe", "dashboard", str(runs), "--port", str(port)]
        began = time.perf_counter()
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            up = _wait_health(port, began)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}")
                page.wait_for_selector("h1", state="visible", timeout=120_000)
                drawn = time.perf_counter() - began
                while not _demo_finished(runs):  # the page stays open, as a new user's does: it follows the runs
                    if time.perf_counter() - began > 1800:
                        raise SystemExit("the demo runs did not finish within 30 minutes")
                    page.wait_for_timeout(1000)
                finished = time.perf_counter() - began
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return [
        ("server answering, from `probe dashboard` on an empty folder", up, ""),
        ("first page drawn (Chromium), empty probe cache", drawn, "< 15 s"),
        ("the three demo runs finished, trained beside the server with the page open", finished, "< 180 s"),
    ]


def _table(title: str, rows: list[tuple[str, float, str]]) -> str:
    return "\n".join(
        [
            title,
            "",
            "| what | seconds | target |",
            "|---|---:|---|",
            *[f"| {name} | {seconds:.2f} | {target} |" for name, seconds, target in rows],
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", help="folder with the demo runs")
    parser.add_argument("--fresh", action="store_true", help="time a new user's first start instead")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.fresh:
        text = _table(f"A new user's first `probe dashboard`, {os.cpu_count()} CPU cores:", fresh_start())
        (HERE / "dashboard_fresh.md").write_text("# The first start\n\n" + text + "\n")
        print(text)
        return
    if not args.runs:
        parser.error("give --runs DIR (a folder with the demo runs) or --fresh")
    runs = Path(args.runs).resolve()
    rows = [(name, seconds, "< 1 s") for name, seconds in reruns(runs)]
    useful, full = first_page(runs)
    rows.append(("first page: the runs overview, cold cache, UMAP not fitted (Chromium)", useful, "< 5 s"))
    rows.append(("first page: the nearest-token tables, cold cache (Chromium)", full, ""))
    text = _table(f"Demo runs in {runs.name}/, 2 CPU cores:", rows)
    (HERE / "dashboard.md").write_text("# Dashboard responsiveness\n\n" + text + "\n")
    print(text)


if __name__ == "__main__":
    main()
