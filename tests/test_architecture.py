"""The package's layers: every module is placed in one, imports (lazy ones too) never go up, and none cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "probe"

# docs/architecture.md explains each layer; a new module must be placed here.
LAYERS: dict[str, int] = {
    **dict.fromkeys(["util", "tokens", "cache", "batching", "softprompt", "stats"], 0),
    **dict.fromkeys(["models", "data"], 1),
    **dict.fromkeys(["index", "prompts", "runs", "layouts"], 2),
    **dict.fromkeys(["measures", "tasks", "inits", "evaluation"], 3),
    **dict.fromkeys(["reports", "drift", "projection", "compare", "explain", "hardening", "lens"], 4),
    **dict.fromkeys(["training", "integrations"], 5),
    **dict.fromkeys(["demo", "replicate"], 6),
    **dict.fromkeys(["commands", "cli", "__main__"], 7),
    **dict.fromkeys(["views", "plots", "app"], 8),
}


def imports_of(path: Path) -> set[str]:
    """probe modules that ``path`` imports anywhere in its body (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "probe":
            parts = node.module.split(".")
            found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names if a.name in LAYERS}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("probe.")}
    return found - {path.stem}


GRAPH = {p.stem: imports_of(p) for p in sorted(PACKAGE.glob("*.py")) if p.stem != "__init__"}


def test_layers__every_module_is_placed():
    assert sorted(set(GRAPH) - set(LAYERS)) == []


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_layers__imports_never_go_up(module):
    upward = sorted(d for d in GRAPH[module] if LAYERS.get(d, 99) > LAYERS[module])
    assert upward == [], f"{module} (layer {LAYERS[module]}) imports higher layers: {upward}"


def test_layers__no_import_cycles():
    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for dep in GRAPH.get(start, ()):
            if dep == goal or (dep not in seen and (seen.add(dep) or reaches(dep, goal, seen))):
                return True
        return False

    assert [m for m in GRAPH if reaches(m, m, set())] == []


def test_layers__the_checker_sees_lazy_imports(tmp_path):
    module = tmp_path / "x.py"
    module.write_text("def f():\n    from probe.runs import load_run\n    import probe.models\n")
    assert imports_of(module) == {"runs", "models"}


@pytest.mark.slow
def test_import_probe__leaves_the_environment_alone(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    code = "import os, probe; print(os.environ.get('NUMBA_CACHE_DIR', 'unset'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "unset"


def test_dependencies__every_third_party_import_is_declared():
    import importlib.metadata
    import re
    import sys

    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=\[ ;]", d)[0].lower().replace("_", "-") for d in project["dependencies"]}
    optional = {
        re.split(r"[<>=\[ ;]", d)[0].lower().replace("_", "-")
        for group in project["optional-dependencies"].values()
        for d in group
    }
    distributions = importlib.metadata.packages_distributions()
    imported: set[str] = set()
    for path in [*PACKAGE.glob("*.py"), PACKAGE.parent / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = sorted(m for m in imported - set(sys.stdlib_module_names) if m != "probe")
    missing = []
    for module in third_party:
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & (declared | optional):
            missing.append(module)
    assert missing == []
