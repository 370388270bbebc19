"""probe dashboard: read soft prompts, follow them through training, compare initialisations.

Start it with ``probe dashboard [RUNS_DIR]`` (or ``streamlit run app.py -- --runs RUNS_DIR`` in a checkout).
This entry sets up the page, shows the runs at a glance on a session's first visit, draws the shared sidebar
and routes to the pages (``st.navigation``): one small module per view in ``screens/``, each with its own URL.
Links saved before the pages existed (``?tab=Map&...``) open the page they name.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

logger = logging.getLogger(__name__)

# The page modules. Not ``pages/``: Streamlit takes a ``pages/`` folder beside the entry for old-style pages,
# and its AppTest then runs a page without the entry. (No bare strings in this file or a page: Streamlit's magic
# would draw them on every page.)
SCREENS = Path(__file__).resolve().parent / "screens"
TITLE = "probe: soft prompts, readable"

# (file in screens/, title, URL path) of every page; the first is the default.
PAGE_LIST: tuple[tuple[str, str, str], ...] = (
    ("tokens.py", "Nearest tokens", "tokens"),
    ("drift.py", "Drift", "drift"),
    ("map.py", "Map", "map"),
    ("compare.py", "Compare", "compare"),
    ("side_by_side.py", "Side by side", "side-by-side"),
    ("explain.py", "Explain", "explain"),
    ("lens.py", "Layer lens", "lens"),
    ("findings.py", "Findings", "findings"),
    ("frontier.py", "Frontier", "frontier"),
    ("audit.py", "Audit", "audit"),
    ("inspect_file.py", "Inspect a file", "inspect"),
)


def _pages() -> list[st.Page]:
    return [
        st.Page(str(SCREENS / name), title=title, url_path=url, default=i == 0)
        for i, (name, title, url) in enumerate(PAGE_LIST)
    ]


def _follow_old_link(pages: list[st.Page]) -> None:
    """``?tab=Map&k=3`` (a link from before the pages) opens the Map page with ``k=3``."""
    tab = st.query_params.get("tab")
    if tab is None:
        return
    target = next((p for p, (_, title, _) in zip(pages, PAGE_LIST, strict=True) if title == tab), None)
    rest = {key: st.query_params.get_all(key) for key in st.query_params if key != "tab"}
    if target is not None:
        st.switch_page(target, query_params=rest)
    st.query_params.clear()
    st.query_params.update(rest)


def main() -> None:
    """Draw the page: config, title, the first visit's overview, the shared sidebar, then the chosen page."""
    st.set_page_config(page_title=TITLE, page_icon="🔎", layout="wide")
    st.title(TITLE)
    from probe.dashboard.settings import runs_dir

    slot = st.empty()
    if "warmed" not in st.session_state:
        from probe.dashboard.overview import quick_overview

        overview = quick_overview(runs_dir())
        if not overview.empty:
            with slot.container():
                st.caption("Loading the model and the readings…")
                st.dataframe(overview, hide_index=True)
    from probe.dashboard.sidebar import shared, sidebar

    pages = _pages()
    navigation = st.navigation(pages)
    _follow_old_link(pages)  # before the sidebar: its widgets own their query parameters once drawn
    view = sidebar()
    try:
        with shared(view):
            navigation.run()
    except Exception as e:  # the page degrades, never dies: one line, the traceback in the server's log
        from probe.dashboard.widgets import show_error

        logger.exception("a page failed")
        show_error(e)
    finally:
        slot.empty()  # the full page is drawn: the overview gives way
        st.session_state["warmed"] = True


main()
