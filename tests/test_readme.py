"""README and CI stay in step: CI runs exactly the README's test command; the first screen has both commands."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _first_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme__first_screen_has_the_main_job_and_the_test_command():
    lines = (ROOT / "README.md").read_text().splitlines()
    first_screen = "\n".join(lines[:25])
    commands = _first_block()
    assert len(commands) == 2
    assert all(c in first_screen for c in commands)
    assert "probe dashboard" in commands[0] and "torch==2.13.0" in commands[0]
    assert "pytest" in commands[1]


def test_ci__runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "torch==2.13.0" in ci.split(_first_block()[1])[0]
    assert ci.strip().splitlines()[-1] == _first_block()[1]


def test_readme__screenshots_exist():
    for name in re.findall(r"\((docs/[^)]+\.png)\)", (ROOT / "README.md").read_text()):
        assert (ROOT / name).is_file(), name
