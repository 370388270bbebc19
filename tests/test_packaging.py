"""probe installs like a package: a wheel in a fresh venv serves the dashboard; signals stop the server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _start(command: list[str], port: int, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if _serving(port):
            return proc
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"the dashboard did not start: {proc.stdout.read() if proc.stdout else ''}")


def _stops(proc: subprocess.Popen, port: int, sig: int) -> bool:
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return False
    return not _serving(port)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_dashboard__a_signal_to_probe_dashboard_stops_the_server(sig, demo_runs, tmp_path):
    port = _free_port()
    command = [sys.executable, "-m", "probe", "dashboard", str(demo_runs), "--port", str(port), "--no-demo"]
    proc = _start(command, port, ROOT)
    assert _stops(proc, port, sig)
    with socket.socket() as s:  # nothing listens on the port any more (TIME_WAIT connections may linger)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_wheel__installs_into_a_fresh_venv_and_serves_the_dashboard(demo_runs, tmp_path):
    source = tmp_path / "source"  # built from a copy: building writes build/ and *.egg-info next to the sources
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
        ],
        check=True,
    )
    (wheel,) = wheels.glob("probe-*.whl")
    venv = tmp_path / "venv"
    # the dependencies (torch, transformers, ...) come from this interpreter's site-packages; probe from the wheel
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    where = subprocess.run(
        [str(python), "-c", "import probe, probe.cli.commands as c; print(probe.__file__); print(c.app_path())"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where  # the wheel's probe, not the checkout's
    # the page renders from the installed package (Streamlit's AppTest, inside the venv)
    render = (
        "import sys; from streamlit.testing.v1 import AppTest; from probe.cli.dashboard import app_path; "
        "at = AppTest.from_file(app_path(), default_timeout=300).run(); "
        "assert not at.exception, at.exception; print(' | '.join(h.value for h in at.subheader))"
    )
    env = {**os.environ, "PROBE_RUNS_DIR": str(demo_runs), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    shown = subprocess.run([str(python), "-c", render], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "class-label" in shown.stdout
    port = _free_port()
    command = [str(venv / "bin" / "probe"), "dashboard", str(demo_runs), "--port", str(port), "--no-demo"]
    proc = _start(command, port, tmp_path)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read(2000).lower()
    finally:
        assert _stops(proc, port, signal.SIGTERM)
