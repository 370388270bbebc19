"""Finding and opening run folders in any layout: probe's own (:mod:`probe.formats.run`) or another tool's
(:mod:`probe.formats.layouts`), and finding every run under a folder.

The layouts are listed here, in the formats layer; a plugin adds its own with :func:`register_layout`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from probe.core.io import expect_path
from probe.core.softprompt import SoftPrompt
from probe.formats.files import Loader
from probe.formats.layouts import LAYOUTS
from probe.formats.manifest import MANIFEST
from probe.formats.run import Run, RunLayout, is_run_folder, open_probe_run

logger = logging.getLogger(__name__)

_PLUGINS: list[RunLayout] = []


def register_layout(layout: RunLayout) -> None:
    """Add a run layout of your own; probe's own run folder and its built-in layouts are tried first."""
    _PLUGINS.append(layout)


def layouts() -> list[RunLayout]:
    """The layouts a run folder may have, in the order they are tried: probe's own, the built-in ones, plugins."""
    own = RunLayout("probe", f"a probe run ({MANIFEST}, snapshots/)", is_run_folder, open_probe_run)
    return [own, *LAYOUTS, *_PLUGINS]


def is_any_run(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder in any run layout (probe's own or another tool's)."""
    p = Path(path)
    return p.is_dir() and any(layout.detect(p) for layout in layouts())


def load_run(path: str | os.PathLike[str]) -> Run:
    """Open a run folder: probe's own, or a layout another tool writes (:func:`layouts`), read-only.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: a corrupt manifest, or a folder in none of the accepted layouts (the message lists them).
    """
    expect_path(path, "run", "a run folder's path")
    p = Path(path).expanduser()
    if p.is_file():
        raise FileNotFoundError(
            f"'{path}' is a file; a run is a folder (probe's own, a Trainer's output with checkpoint-N/ adapters, or a "
            "folder of snapshots): give the folder, or read one prompt file with probe report"
        )
    if not p.is_dir():
        raise FileNotFoundError(f"run folder '{path}' does not exist")
    if (p / MANIFEST).is_file():  # probe's own, even when corrupt: say what is wrong with it
        return open_probe_run(p)
    for layout in layouts():
        if layout.detect(p):
            return layout.open(p)
    accepted = "; ".join(f"{layout.name}: {layout.description}" for layout in layouts())
    raise ValueError(f"'{path}' is not a run folder in any layout probe reads. Accepted layouts: {accepted}")


def find_runs(root: str | os.PathLike[str], *, skipped: list[str] | None = None) -> list[Run]:
    """Every readable run directly under ``root`` (or ``root`` itself), sorted by name; a broken one is skipped
    with a warning that names it (and, when ``skipped`` is given, a line appended to it)."""
    expect_path(root, "root", "a folder of runs (or a run folder)")
    p = Path(root).expanduser()
    if not p.is_dir():  # not yet written (a dashboard waits for it): no runs
        return []
    try:
        candidates = [p] if is_any_run(p) else sorted(c for c in p.iterdir() if is_any_run(c))
    except OSError as e:
        logger.warning("cannot list %s: %s", p, e)
        return []
    runs = []
    for c in candidates:
        try:
            runs.append(load_run(c))
        except (ValueError, FileNotFoundError, OSError, RecursionError) as e:
            logger.warning("skipping %s: %s", c, e)
            if skipped is not None:
                skipped.append(f"{c.name}: {' '.join(str(e).split())}")
    return runs


def _latest_prompts(path: str | os.PathLike[str]) -> list[SoftPrompt]:
    """A run's latest snapshot: one prompt per task of a multitask run (``load_prompt(..., task_id=)`` picks)."""
    run = load_run(path)
    return [run.for_task(t).latest_prompt() for t in run.task_ids] or [run.latest_prompt()]


LOADER = Loader(
    "run",
    "a run folder (probe's own, or a layout of probe.formats.layouts): its latest snapshot (per task)",
    is_any_run,
    lambda path, key: _latest_prompts(path),
)
