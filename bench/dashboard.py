"""Dashboard responsiveness on the demo runs (issue 14: reruns under 1 s, a useful first page within 5 s).

    python bench/dashboard.py --runs DIR     # DIR holds the three demo runs (probe demo --out DIR)

1. Reruns under Streamlit's AppTest, after a warm-up run: a plain rerun, and reruns after changing k, the
   step, the highlighted position, the runs shown and the map colouring. Median of 5 each.
2. The first page in Debian's Chromium: ``probe dashboard`` with an empty probe cache, so the UMAP map is
   still being fitted in the background. The time runs from the server's health check answering to the runs
   overview (read from the manifests before torch is imported), then to the nearest-token tables.

Prints a markdown table and writes bench/dashboard.md.
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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PROBE_CACHE_DIR": cache, "PROBE_MAP": "umap", "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "probe", "dashboard", str(runs), "--port", str(port), "--no-demo"]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.1)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="folder with the demo runs")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    runs = Path(args.runs).resolve()
    rows = [(name, seconds, "< 1 s") for name, seconds in reruns(runs)]
    useful, full = first_page(runs)
    rows.append(("first page: the runs overview, cold cache, UMAP not fitted (Chromium)", useful, "< 5 s"))
    rows.append(("first page: the nearest-token tables, cold cache (Chromium)", full, ""))
    lines = [
        f"Demo runs in {runs.name}/, 2 CPU cores:",
        "",
        "| what | seconds | target |",
        "|---|---:|---|",
        *[f"| {name} | {seconds:.2f} | {target} |" for name, seconds, target in rows],
    ]
    text = "\n".join(lines)
    (HERE / "dashboard.md").write_text("# Dashboard responsiveness\n\n" + text + "\n")
    print(text)


if __name__ == "__main__":
    main()
