"""Readings the pages compute on request, in a child process beside the server: ``probe explain`` for the Explain
and Layer lens pages. The page offers the button, shows the estimate and the progress while it runs, and draws the
reading when it lands; a server that stops takes its children with it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import streamlit as st

from probe.core.children import first_line, last_line, start_beside
from probe.formats.run import Run, is_run_folder

EXPLAIN_LOG = ".probe-explain.log"
"""Where ``probe explain`` started from a page writes its estimate and progress (in the run folder)."""


@st.cache_resource
def _jobs() -> dict[str, subprocess.Popen[bytes]]:
    """Run folder -> its explain process, for the server's lifetime (shared by every session)."""
    return {}


def start_explain(run: Run) -> None:
    """Start ``probe explain`` on ``run`` beside the server, unless one is already running there."""
    jobs, key = _jobs(), str(run.path)
    if key in jobs and jobs[key].poll() is None:
        return
    log = Path(run.path) / EXPLAIN_LOG
    log.unlink(missing_ok=True)  # the log of this computation only
    jobs[key] = start_beside(["explain", key], log)  # the report itself goes to the log: the page reads the record


def explain_job(run: Run) -> tuple[str, str] | None:
    """(state, what it last said) of the explain started on ``run`` from a page: ``running``, ``done`` or
    ``failed``; None when none was started by this server."""
    job = _jobs().get(str(run.path))
    if job is None:
        return None
    code = job.poll()
    state = "running" if code is None else "done" if code == 0 else "failed"
    return state, last_line(Path(run.path) / EXPLAIN_LOG)


def offer_explain(run: Run, what: str) -> None:
    """On a page that shows ``probe explain``'s reading (``what``) of a run that has none: a button that computes
    it beside the server, then its estimate and progress until it lands (the page redraws itself then)."""
    job = explain_job(run)
    if job is None or job[0] == "failed":
        if job is not None:
            st.error(f"`probe explain` stopped: {job[1] or 'no message'} (log: {Path(run.path) / EXPLAIN_LOG})")
        if not is_run_folder(run.path):
            st.info(
                f"Not measured yet: `probe explain {run.path} --out FILE` reads {what} (this folder is another "
                "tool's, so probe does not write into it)."
            )
            return
        st.info(f"Not measured yet: {what} come from `probe explain`, which writes them into the run folder.")
        if st.button(
            "Compute now",
            key=f"explain-{run.name}",
            help="runs probe explain beside the server; the "
            "estimate shows first, and the page fills in when it is done",
        ):
            start_explain(run)
            st.rerun()
        return
    _follow(str(run.path), run.name)


@st.fragment(run_every=2)
def _follow(path: str, name: str) -> None:
    job = _jobs().get(path)
    if job is None:
        return
    if job.poll() is not None:
        st.rerun()  # landed (or failed): the whole page draws the reading or the error
    log = Path(path) / EXPLAIN_LOG
    estimate = first_line(log, "explaining") or "starting"  # the estimate: printed first, before any progress
    st.info(f"Computing {name}'s reading beside the server: {estimate}")
    st.caption(last_line(log) or "loading the model")
