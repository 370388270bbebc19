"""Reading a child's log while it runs: its opening estimate and its latest progress, without reading it all."""

from __future__ import annotations

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
