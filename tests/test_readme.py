"""README and CI stay in step: CI runs exactly the README's test command; the first screen has both commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


def test_errors_catalogue__every_test_it_names_exists():
    """docs/errors.md names, per bad input, the test that checks its message (``module::test``, ``test``, a
    ``prefix*`` or a whole ``test_module``): each of them exists, so a renamed test cannot leave a row pointing
    nowhere."""
    files = {path.stem: path.read_text() for path in (ROOT / "tests").rglob("test_*.py")}
    named = re.findall(r"`(test_[^`\s]*)`", (ROOT / "docs" / "errors.md").read_text())
    assert len(named) > 40
    missing = []
    for name in named:
        module, _, test = name.rpartition("::")
        if not module and test in files:
            continue
        pattern = rf"def {re.escape(test.rstrip('*'))}" + ("" if test.endswith("*") else r"\(")
        if not re.search(pattern, files.get(module, "") if module else "\n".join(files.values())):
            missing.append(name)
    assert not missing, missing


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme__every_probe_name_it_shows_resolves_and_none_is_deprecated():
    import ast
    import importlib
    import warnings

    import probe

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        _resolve_names(_python_blocks(), probe, importlib, ast)


def _resolve_names(blocks: list[str], probe, importlib, ast) -> None:
    for block in blocks:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("probe"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert getattr(module, alias.name) is not None, f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "probe":
                assert getattr(probe, node.attr) is not None, f"probe.{node.attr}"


CUTS = [
    # only the sizes: steps, rows, tokens (each must be found, so a README edit cannot silently skip a cut)
    ("--steps 150", "--steps 3"),
    ("max_steps=100", "max_steps=3"),
    ("range(1, 31)", "range(1, 4)"),
    ("steps=150)", "steps=3)"),
    ("steps=100)", "steps=2, batch_size=4)"),
    ('method="search", length=40,', 'method="search", length=20,'),
    ("Readout.from_run(run)", "Readout.from_run(run, test_size=16)"),  # importance: 3p + 1 passes over them
    ("readout)  # positions", "readout, tokens=500, texts=2)  # positions"),
]
DASHBOARD = """probe() {  # 'probe dashboard' serves until stopped: here it must answer, then it is stopped
  if [ "$1" != dashboard ]; then command probe "$@"; return; fi
  command probe "$@" --port "$PROBE_TEST_PORT" --no-demo & local pid=$!
  for _ in $(seq 600); do
    if curl -fs "http://127.0.0.1:$PROBE_TEST_PORT/_stcore/health" >/dev/null; then kill $pid; wait $pid; return 0; fi
    sleep 0.1
  done
  kill $pid; return 1
}
"""


def _blocks_after_the_first_screen() -> list[tuple[str, str]]:
    """(language, text) of every bash and python block but the first screen's (installs and the whole suite)."""
    blocks = re.findall(r"```(bash|python)\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return blocks[1:]


@pytest.mark.slow
def test_readme__every_block_runs_in_order_in_a_fresh_folder(tmp_path, monkeypatch):
    """Every block after the first screen, pasted in order into one fresh folder (python blocks share one
    namespace, as in a notebook; shell blocks run in bash), with only the sizes cut."""
    import os
    import shutil
    import socket
    import subprocess

    if shutil.which("curl") is None:
        pytest.skip("curl is needed to ask the dashboard whether it answers")
    monkeypatch.chdir(tmp_path)
    blocks = _blocks_after_the_first_screen()
    text = "\n".join(block for _, block in blocks)
    for before, _ in CUTS:
        assert before in text, f"the README no longer has {before!r}: update CUTS"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    namespace: dict = {}
    for language, block in blocks:
        for before, after in CUTS:
            block = block.replace(before, after)
        if language == "bash":
            env = {**os.environ, "PROBE_TEST_PORT": str(port)}
            done = subprocess.run(["bash", "-ec", DASHBOARD + block], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-2000:]
        else:
            exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["report"].positions and namespace["run"].status == "finished"
    assert len(namespace["readout"].splits.test) == 16  # the cuts reached the readings
    assert (tmp_path / "runs" / "mine" / "adapter").is_dir() and (tmp_path / "runs" / "loop").is_dir()
    assert (tmp_path / "drift.html").stat().st_size > 0


@pytest.mark.slow
def test_readme__the_readable_terms_block_runs_in_a_users_loop(tiny_gpt2_path):
    """The faithfulness and projection terms as the README adds them to a user's own loss (tiny GPT-2)."""
    from peft import PromptTuningConfig, get_peft_model

    import probe

    block = next(b for b in _python_blocks() if "faithfulness_loss" in b)
    model = probe.load_model(str(tiny_gpt2_path), device="cpu")
    peft_model = get_peft_model(model.model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    ids = model.tokenizer(["the cat sat on the mat"], return_tensors="pt")
    namespace = {"model": model, "peft_model": peft_model, "batch": {**ids, "labels": ids["input_ids"]}}
    exec(compile(block, "README.md", "exec"), namespace)
    prompt = namespace["prompt"]
    assert namespace["loss"].ndim == 0 and prompt.grad is not None and float(prompt.grad.abs().sum()) > 0
