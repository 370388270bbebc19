"""The dashboard in a real browser: streamlit run app.py, driven in Debian's Chromium with Playwright.

Never runs ``playwright install``: the browser is the system's ``chromium`` (``executable_path``). Its
screenshots go to a temporary folder (the README's come from docs/screenshots.py), so the checkout is untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serving(folder: Path, *options: str, env: dict[str, str] | None = None, output: int | None = None):
    """``probe dashboard FOLDER --no-demo OPTIONS`` on a free port: its URL once it answers, stopped afterwards."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "probe", "dashboard", str(folder), "--port", str(port), "--no-demo", *options],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        stdout=output if output is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if output is not None else subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"streamlit did not start: {proc.stdout.read() if proc.stdout else ''}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def umap_ready(demo_runs, default_model, default_index):
    """Fit the dashboard's UMAP map once, into the test cache, so the page shows UMAP straight away."""
    from probe.dashboard.views import neighbour_ids
    from probe.formats.discovery import find_runs
    from probe.readings.projection import MapConfig, fit_map

    extra = neighbour_ids(find_runs(demo_runs), default_index, k=5)
    return fit_map(default_model, default_index, MapConfig(), extra_ids=extra)


@pytest.fixture(scope="module")
def server(demo_runs, umap_ready):
    with _serving(demo_runs, env={"PROBE_MAP": "umap"}, output=subprocess.PIPE) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield b
        b.close()


def _wait_idle(page) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000)
    page.wait_for_timeout(500)


def _open(page, title: str) -> None:
    """Open a page from the sidebar's navigation, as a user does."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    _wait_idle(page)


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_browser__tables_map_selection_and_screenshots(server, browser, demo_runs, default_model, tmp_path):
    from probe import load_run, nearest_tokens

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server)
    page.wait_for_selector("text=class-label · step 10", timeout=180_000)
    _wait_idle(page)
    _no_exception(page)

    # the nearest-token table shows what probe report says for the same run
    expected = nearest_tokens(load_run(demo_runs / "class-label").latest_prompt(), default_model, k=5)
    page.wait_for_selector('[role="gridcell"]', state="attached", timeout=60_000)
    cells = page.locator('[role="gridcell"]').all_text_contents()
    for p in expected.positions:
        assert p.neighbours[0].token in cells
    page.screenshot(path=str(tmp_path / "tokens.png"))
    assert _is_png(tmp_path / "tokens.png")

    # the map draws the vocabulary and the three runs' trajectories in one frame
    _open(page, "Map")
    page.wait_for_selector("text=UMAP map of", timeout=120_000)
    _wait_idle(page)
    _no_exception(page)
    assert page.url.split("?")[0].endswith("/map")  # each page has its own URL
    chart = page.locator(".js-plotly-plot").first
    chart.wait_for(timeout=60_000)
    legend = chart.locator(".legendtext").all_text_contents()
    assert {"class-label", "sampled-vocab", "random-uniform (off-manifold)"} <= set(legend)
    assert chart.locator("canvas").count() > 0  # the WebGL vocabulary cloud
    written = set(chart.locator("svg text").all_text_contents())  # labels are SVG text, readable without hovering
    assert {"joy", "anger", "fear", "sadness"} <= written  # the class labels
    assert {p.neighbours[0].token for p in expected.positions} <= written  # each position's top-1 token
    assert len(written) > 60  # landmark words where they fit beside the required ones (about 80 on the demo map)
    page.screenshot(path=str(tmp_path / "map.png"))
    assert _is_png(tmp_path / "map.png")

    # selecting a single run changes the view
    _open(page, "Nearest tokens")
    page.wait_for_selector("h3:has-text('random-uniform · step')", timeout=120_000)
    _wait_idle(page)
    before = page.locator("h3").all_inner_texts()
    assert any("random-uniform" in t for t in before)
    page.get_by_role("button", name="Remove random-uniform").click()
    page.wait_for_function(
        "() => ![...document.querySelectorAll('h3')].some(h => h.innerText.includes('random'))", timeout=60_000
    )
    _wait_idle(page)
    after = page.locator("h3").all_inner_texts()
    assert not any("random-uniform" in t for t in after) and any("class-label" in t for t in after)

    for title in ("Drift", "Compare", "Layer lens", "Inspect a file"):
        _open(page, title)
        _wait_idle(page)
        _no_exception(page)
    page.close()


def test_browser__a_link_reopens_the_same_view_and_follows_changes(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/drift?runs=sampled-vocab&step=0&k=3&highlight=2")
    page.wait_for_selector(".js-plotly-plot", timeout=180_000)  # the Drift page's curves are drawn
    _wait_idle(page)
    _no_exception(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert "sampled-vocab" in sidebar.inner_text() and "class-label" not in sidebar.inner_text()
    _open(page, "Map")  # a change goes back into the URL, and the view goes with it
    page.wait_for_function("() => window.location.pathname.endsWith('/map')", timeout=60_000)
    page.wait_for_function("() => window.location.search.includes('k=3')", timeout=60_000)
    assert "runs=sampled-vocab" in page.url
    page.close()


def test_browser__a_link_saved_before_the_pages_opens_its_page(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/?runs=sampled-vocab&k=3&tab=Drift")
    page.wait_for_function("() => window.location.pathname.endsWith('/drift')", timeout=180_000)
    page.wait_for_selector(".js-plotly-plot", timeout=180_000)
    _wait_idle(page)
    _no_exception(page)
    assert "k=3" in page.url and "tab=" not in page.url
    page.close()


def test_browser__uploads_join_the_view_and_a_pickle_is_refused(server, browser, default_model, tmp_path):
    import pickle
    import zipfile

    from safetensors.numpy import save_file

    from probe.tasks.kinds import wrap_with_prompt

    ids = default_model.tokenizer.convert_tokens_to_ids(["music", "ocean", "science"])
    rows = default_model.embeddings_numpy()[ids]
    save_file({"prompt": rows}, tmp_path / "mine.safetensors")
    wrap_with_prompt(default_model, rows[:2]).save_pretrained(tmp_path / "adapter")
    with zipfile.ZipFile(tmp_path / "adapter.zip", "w") as z:
        for f in (tmp_path / "adapter").iterdir():
            z.write(f, f"adapter/{f.name}")
    marker = tmp_path / "pwned"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"prompt": Bomb()}))

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/inspect")
    page.wait_for_selector('[data-testid="stFileUploader"]', timeout=180_000)
    _wait_idle(page)
    upload = page.locator('[data-testid="stFileUploader"] input[type="file"]')
    upload.set_input_files(str(tmp_path / "mine.safetensors"))
    page.wait_for_selector("text=upload: mine.safetensors", state="attached", timeout=120_000)
    _wait_idle(page)
    _no_exception(page)
    page.wait_for_selector('[role="gridcell"]:text-is("science")', state="attached", timeout=60_000)
    cells = page.locator('[role="gridcell"]').all_text_contents()
    assert {"music", "ocean", "science"} <= set(cells)
    # it joins the nearest-token page (and the map) as one more prompt
    _open(page, "Nearest tokens")
    page.wait_for_selector('h3:has-text("upload: mine.safetensors")', timeout=120_000)
    _wait_idle(page)
    _open(page, "Inspect a file")
    _wait_idle(page)
    upload = page.locator('[data-testid="stFileUploader"] input[type="file"]')

    upload.set_input_files(str(tmp_path / "adapter.zip"))
    page.wait_for_selector("text=upload: adapter.zip", state="attached", timeout=120_000)
    _wait_idle(page)
    _no_exception(page)

    upload.set_input_files(str(tmp_path / "evil.pt"))
    page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=120_000)
    message = page.locator('[data-testid="stAlertContentError"]').first.inner_text().strip()
    assert (len(message.splitlines()) == 1 and "evil.pt" not in message) or "pickle" in message.lower()
    assert not marker.exists()  # no code from the upload ran
    page.close()


def test_browser__play_steps_the_views_through_training(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/?runs=class-label&step=0")
    page.wait_for_selector("text=class-label · step 0", state="attached", timeout=180_000)
    _wait_idle(page)
    page.locator('[data-testid="stSidebar"]').get_by_text("Play through training").click()
    page.wait_for_selector("text=class-label · step 10", state="attached", timeout=60_000)  # frame 1
    page.wait_for_selector("text=class-label · step 0", state="attached", timeout=60_000)  # frame 2: back to start
    _no_exception(page)
    page.close()


def test_browser__initialisations_side_by_side(server, browser):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{server}/side-by-side")
    for init in ("class-label", "random-uniform", "sampled-vocab"):
        page.wait_for_selector(f"strong:text-is('{init} · p=5')", timeout=120_000)
    _wait_idle(page)
    _no_exception(page)
    # river, travel, accuracy and a map per column
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 12", timeout=120_000)
    assert page.locator(".js-plotly-plot").count() == 3 * 4
    page.close()


# What a page shows before its own title (text of the main area that precedes the first h1), every table's box that
# reaches past the main area's right edge, and the SVG text labels of every chart that overlap another.
_READING = """() => {
  const main = document.querySelector('[data-testid="stMain"]') || document.querySelector('section.main');
  const h1 = main.querySelector('h1');
  let before = '';
  if (h1) {
    const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      if (h1.compareDocumentPosition(node) & Node.DOCUMENT_POSITION_FOLLOWING || h1.contains(node)) break;
      const style = node.parentElement && getComputedStyle(node.parentElement);
      if (style && style.visibility !== 'hidden' && style.display !== 'none') before += node.textContent;
    }
  }
  const edge = main.getBoundingClientRect().right;
  const clipped = [...main.querySelectorAll('[data-testid="stDataFrame"], [data-testid="stTable"]')]
    .filter(t => t.getBoundingClientRect().width > 0 && t.getBoundingClientRect().right > edge + 1)
    .map(t => t.innerText.slice(0, 40));
  const overlaps = [];
  let labels = 0;
  for (const chart of main.querySelectorAll('.js-plotly-plot')) {
    const boxes = [...chart.querySelectorAll('svg text.textpoint text, svg g.annotation-text-g text, svg .textpoint')]
      .filter(t => t.textContent.trim())
      .map(t => [t.textContent, t.getBoundingClientRect()])
      .filter(([, r]) => r.width > 0);
    labels += boxes.length;
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const [a, r] = boxes[i], [b, s] = boxes[j];
      const w = Math.min(r.right, s.right) - Math.max(r.left, s.left);
      const h = Math.min(r.bottom, s.bottom) - Math.max(r.top, s.top);
      if (w > 2 && h > 2) overlaps.push(a + ' / ' + b);
    }
  }
  const tables = main.querySelectorAll('[data-testid="stDataFrame"], [data-testid="stTable"]').length;
  return {title: h1 ? h1.innerText : null, before: before.trim(), clipped, overlaps, labels, tables};
}"""


def _read_every_page(url: str, browser, shots: Path, *, runs: bool = True) -> dict[str, dict]:
    """Open every page from the sidebar as a user does; what each shows (see ``_READING``), after a screenshot
    (``runs``: the folder has runs, so the Map page draws a map to wait for)."""
    from probe.dashboard.app import PAGE_LIST

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector('[data-testid="stSidebarNav"]', timeout=180_000)
    _wait_idle(page)
    seen = {}
    for i, (_, title, path) in enumerate(PAGE_LIST):
        _open(page, title)
        if i:  # the first page is served at the root
            page.wait_for_url(f"**/{path}*", timeout=60_000)
        page.wait_for_timeout(1500)  # the rerun starts: the old page's elements turn stale, then go
        _wait_idle(page)
        page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=120_000)
        page.wait_for_selector("h1", state="attached", timeout=120_000)
        if title == "Map" and runs:
            page.wait_for_selector("text=map of", timeout=180_000)  # the fitted map, not the PCA stand-in
            _wait_idle(page)
        if title == "Nearest tokens" and runs:  # a loaded machine may not have begun the rerun after 1.5 s
            page.wait_for_selector('[data-testid="stDataFrame"]', state="attached", timeout=120_000)
            _wait_idle(page)
        _no_exception(page)
        page.screenshot(path=str(shots / f"{path}.png"), full_page=True)
        seen[title] = page.evaluate(_READING)
    page.close()
    return seen


def test_browser__every_page_reads_cleanly_on_the_demo_runs(server, browser, tmp_path):
    """Every page: no exception, no text above its title, no table cut off at the right, no chart label on top of
    another (the map's class labels and top-1 tokens included)."""
    seen = _read_every_page(server, browser, tmp_path)
    assert seen["Map"]["labels"] > 20 and seen["Nearest tokens"]["tables"] >= 1  # the checks below had work to do
    for title, view in seen.items():
        assert view["title"], f"{title}: no title"
        assert view["before"] == "", f"{title}: text above the title: {view['before'][:120]!r}"
        assert view["clipped"] == [], f"{title}: tables cut off at the right: {view['clipped']}"
        assert view["overlaps"] == [], f"{title}: labels drawn over each other: {view['overlaps'][:6]}"
    assert all(_is_png(tmp_path / f"{path}.png") for path in ("tokens", "map", "drift"))


def test_browser__every_page_reads_cleanly_on_an_empty_folder(browser, tmp_path):
    """The same on a folder with no runs (and no demo): each page says what to do, with no exception."""
    empty = tmp_path / "empty"
    empty.mkdir()
    shots = tmp_path / "shots"
    shots.mkdir()
    with _serving(empty) as url:
        seen = _read_every_page(url, browser, shots, runs=False)
    for title, view in seen.items():
        assert view["title"], f"{title}: no title on an empty folder"
        assert view["before"] == "", f"{title}: text above the title: {view['before'][:120]!r}"


def test_browser__a_map_fit_over_the_dashboard_s_budget_is_refused_and_the_page_stays_on_pca(
    browser, demo_runs, tmp_path
):
    """``probe dashboard --budget-minutes`` reaches the server: a UMAP fit (of a sample no other test fits) over it
    is refused before it starts, and the Map page says why, in one line, on the PCA map."""
    runs = tmp_path / "runs"
    shutil.copytree(demo_runs / "class-label", runs / "class-label")  # its own neighbours: a sample never cached
    with _serving(runs, "--budget-minutes", "0.00001", env={"PROBE_MAP": "umap", "PROBE_BUDGET_MINUTES": ""}) as url:
        page = browser.new_page()
        page.goto(f"{url}/map", timeout=120_000)
        page.get_by_text("UMAP not fitted", exact=False).wait_for(timeout=180_000)
        page.get_by_text("PCA map of", exact=False).wait_for(timeout=60_000)  # the page goes on, on PCA
        text = page.inner_text("body")
    line = next(line for line in text.splitlines() if "UMAP not fitted" in line)
    assert "over the time budget of 1e-05 min ($PROBE_BUDGET_MINUTES); raise it with --budget-minutes 1" in line
    assert line.endswith("showing PCA.")
