"""Children beside a server (their priority) and reading their logs while they run; an empty runs folder."""

from __future__ import annotations

from pathlib import Path

from probe.core.children import first_line, last_line


def test_log_lines__the_estimate_first_the_progress_bar_last(tmp_path):
    log = tmp_path / "explain.log"
    bar = "".join(f"\rimportance:  {i}%|" for i in range(0, 101, 10))
    log.write_text("loading\nexplaining 5 positions: about 2.0 min on this machine\n" + bar + "\r" + "x" * 10_000)
    assert first_line(log, "explaining") == "explaining 5 positions: about 2.0 min on this machine"
    assert last_line(log) == "x" * 4096  # only the tail is read
    log.write_text("loading\nexplaining 5 positions\n" + bar)
    assert last_line(log) == "importance:  100%|"  # a bar's latest state counts as a line
    assert first_line(log, "harden") == "" and first_line(tmp_path / "missing.log", "explaining") == ""
    log.write_text("x" * 5000 + "\nexplaining late\n")
    assert first_line(log, "explaining") == ""  # only the head is read: the estimate is printed first


def test_start_beside__work_beside_a_server_runs_at_a_lower_priority(tmp_path):
    import os
    import signal

    from probe.core.children import BACKGROUND_NICENESS, start_beside

    child = start_beside(["demo", "--out", str(tmp_path / "runs"), "--no-progress"], tmp_path / "demo.log")
    try:  # the priority is set before the child's exec: readable at once, long before the demo trains
        fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(fields[16]) == min(os.nice(0) + BACKGROUND_NICENESS, 19)  # field 19 of stat: nice
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)


def test_holds_nothing__a_missing_or_empty_folder_or_one_with_only_hidden_files(tmp_path):
    from probe.core.io import holds_nothing

    assert holds_nothing(tmp_path / "missing") and holds_nothing(tmp_path)
    (tmp_path / ".probe-demo.log").write_text("training")
    assert holds_nothing(tmp_path)
    (tmp_path / "run-a").mkdir()
    assert not holds_nothing(tmp_path)
    assert holds_nothing(tmp_path / ".probe-demo.log")  # a file is no folder of runs
