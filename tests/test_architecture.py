"""The package's layers are its folders: imports (lazy ones too) never go up, none cycle, ``import probe`` pulls in
nothing heavy, pages only lay out, and every third-party import is declared. docs/architecture.md is the map."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "probe"

FOLDERS: dict[str, int] = {
    "core": 0,
    "formats": 1,
    "tasks": 2,
    "training": 3,
    "readings": 3,
    "plots": 4,
    "experiments": 5,
    "cli": 6,
    "dashboard": 7,
}
"""Each folder's layer: a module imports only from its own folder and from folders of a lower layer. Training and
the readings share a layer and never import each other: both stand on the tasks below them."""

ALIASES = {"drift", "explain", "integrations"}
"""Top-level modules kept for scripts written against the flat layout; each only re-exports (listed in the docs)."""

PAGE_IMPORTS = {"streamlit", "probe.dashboard", "probe.plots", "probe.readings.reports"}
"""What a page module may import: Streamlit, the dashboard's own modules, figure builders, and text constants; and a
sweep's figure and dashboard table (``probe.experiments.<sweep>.figure`` / ``.table``)."""
SWEEP_VIEW = re.compile(r"^probe\.experiments\.\w+\.(figure|table)$")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_moved_alias(path: Path) -> bool:
    """Whether a module is a deprecated alias of a moved one: a docstring, ``moved_module`` (and, for a name that is
    a function now, ``callable_module``) from ``probe.core.deprecation``, and nothing else."""
    body = ast.parse(path.read_text()).body
    if not body or not (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
        return False
    rest = body[1:]
    imports = [n for n in rest if isinstance(n, ast.ImportFrom)]
    calls = [n for n in rest if not isinstance(n, ast.ImportFrom)]
    return (
        len(imports) == 1
        and imports[0].module == "probe.core.deprecation"
        and all(
            isinstance(n, ast.Assign | ast.Expr)
            and isinstance(n.value, ast.Call)
            and getattr(n.value.func, "id", "") in ("moved_module", "callable_module")
            for n in calls
        )
    )


MOVED = {m for m, p in MODULES.items() if is_moved_alias(p)}
"""Deprecated alias modules (removed in 0.3.0): they serve a moved module's names under the old path with a warning,
so they hold no code and import nothing of probe's statically; the layer rule is about code, so they are exempt."""


def folder_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in FOLDERS) else None


def imports_of(path: Path, *, top_level_only: bool = False) -> set[str]:
    """probe modules that ``path`` imports (anywhere in its body, or only at its top level)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:
            continue  # TYPE_CHECKING blocks
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "probe":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("probe")}
    return {m for m in found if m in MODULES}


def _layer(module: str) -> int | None:
    folder = folder_of(module)
    return FOLDERS.get(folder) if folder else None


GRAPH = {m: imports_of(p) - {m} for m, p in MODULES.items()}


def test_layers__every_module_lives_in_a_layer_folder_or_is_an_alias():
    loose = sorted(m for m in MODULES if folder_of(m) is None and m not in ("probe", "probe.__main__"))
    assert loose == sorted(f"probe.{a}" for a in ALIASES)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) is not None and m not in MOVED))
def test_layers__imports_never_go_up(module):
    mine = _layer(module)
    assert mine is not None
    upward = sorted(
        d
        for d in GRAPH[module]
        if (_layer(d) or 0) > mine
        or (_layer(d) == mine and folder_of(d) != folder_of(module))
        or (folder_of(d) is None and d != "probe")
    )
    assert upward == [], (
        f"{module} (layer {mine}) imports its own layer's other folders, higher layers or aliases: {upward}"
    )


def test_layers__no_import_cycles():
    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for dep in GRAPH.get(start, ()):
            if dep == goal or (dep not in seen and (seen.add(dep) or reaches(dep, goal, seen))):
                return True
        return False

    ignored = {m for m in MODULES if m.endswith("__init__") or m in ("probe",)}
    assert [m for m in GRAPH if m not in ignored and reaches(m, m, set())] == []


def test_init__imports_nothing_at_import_time():
    # `import probe` must not run higher layers' code (no registering by import) nor pull in torch
    for package in ["probe", *(f"probe.{f}" for f in FOLDERS), "probe.readings.explain"]:
        path = MODULES[package]
        assert imports_of(path, top_level_only=True) == set(), f"{package}/__init__.py imports at the top level"


def test_init__all_lists_what_getattr_serves():
    import probe

    served = set(re.findall(r'^    "(\w+)": "probe', (PACKAGE / "__init__.py").read_text(), re.M))
    assert served and served | {"__version__"} == set(probe.__all__)
    for name in probe.__all__:
        assert getattr(probe, name) is not None


def test_aliases__only_re_export_and_warn():
    assert {f"probe.{a}" for a in ALIASES} <= MOVED
    assert {"probe.training.tasks", "probe.formats.frontier_report", "probe.formats.runs"} <= MOVED
    for alias in MOVED:
        assert imports_of(MODULES[alias]) == {"probe.core.deprecation"}, f"{alias}: an alias only serves names"
    users = {m: sorted(GRAPH[m] & MOVED) for m in MODULES if GRAPH[m] & MOVED and m not in MOVED}
    assert users == {}, "probe's own code imports deprecated aliases instead of their new homes"


def test_aliases__every_name_they_serve_warns_and_names_its_new_home():
    import importlib
    import warnings

    for alias in sorted(MOVED):
        module = importlib.import_module(alias)
        names = [n for n in dir(module) if not n.startswith("_")]
        assert names, f"{alias} serves nothing"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            getattr(module, names[0])
        assert [w.category for w in caught] == [DeprecationWarning], alias
        assert "removed in probe 0.3.0" in str(caught[0].message) and names[0] in str(caught[0].message)


@pytest.mark.parametrize("page", sorted((PACKAGE / "dashboard" / "screens").glob("[!_]*.py")))
def test_pages__only_lay_out(page):
    tree = ast.parse(page.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    outside = sorted(
        m
        for m in imported
        if not any(m == p or m.startswith(p + ".") for p in PAGE_IMPORTS) and not SWEEP_VIEW.match(m)
    )
    assert outside == [], f"{page.name} imports {outside}: a page lays out what probe.dashboard computes"
    assert len(page.read_text().splitlines()) <= 80, f"{page.name} is too long to read at a glance"


def magic_drawn(path: Path) -> list[str]:
    """Statements Streamlit's magic would draw on the page: bare expressions other than calls and docstrings."""
    drawn = []
    for node in ast.walk(ast.parse(path.read_text())):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)  # a lambda's or an if-expression's body is one expression
            for i, stmt in enumerate(body if isinstance(body, list) else []):
                if not isinstance(stmt, ast.Expr) or isinstance(stmt.value, ast.Call | ast.Await | ast.Yield):
                    continue
                docstring = field == "body" and i == 0 and isinstance(stmt.value, ast.Constant)
                if not (
                    docstring and isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                ):
                    drawn.append(f"{path.name}:{stmt.lineno} {ast.unparse(stmt)[:50]}")
    return drawn


@pytest.mark.parametrize("script", [PACKAGE / "dashboard" / "app.py", *sorted(PACKAGE.glob("dashboard/screens/*.py"))])
def test_pages__hold_no_bare_expression_that_streamlit_would_draw(script):
    # Streamlit runs the entry and each page as a script and writes every bare expression on the page ("magic"),
    # an attribute docstring after a constant included; only docstrings (module, function, class) are skipped
    assert magic_drawn(script) == [], "turn it into a comment (or call st.write if it is meant for the page)"


def test_pages__the_magic_checker_sees_an_attribute_docstring(tmp_path):
    script = tmp_path / "page.py"
    script.write_text(
        '"""Doc."""\nX = 1\n"""What X is."""\n\n\ndef f():\n    """Doc."""\n    X\n\n\nclass C:\n    "C"\n    "D"\n'
    )
    assert magic_drawn(script) == ["page.py:3 'What X is.'", "page.py:8 X", "page.py:13 'D'"]


def test_modules__stay_one_concept():
    long_modules = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in long_modules.items() if n > 400} == {}
    long_functions = []
    for m, p in MODULES.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80:
                long_functions.append(f"{m}.{node.name}")
    assert long_functions == []


def test_layers__the_checker_sees_lazy_imports(tmp_path):
    module = tmp_path / "x.py"
    module.write_text("def f():\n    from probe.formats.discovery import load_run\n    import probe.core.models\n")
    assert imports_of(module) == {"probe.formats.discovery", "probe.core.models"}


@pytest.mark.slow
def test_import_probe__leaves_the_environment_alone_and_imports_no_torch():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    code = "import os, sys, probe; print(os.environ.get('NUMBA_CACHE_DIR', 'unset'), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["unset", "False"]


def test_dependencies__every_third_party_import_is_declared():
    import importlib.metadata
    import sys

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=\[ ;]", d)[0].lower().replace("_", "-") for d in project["dependencies"]}
    optional = {
        re.split(r"[<>=\[ ;]", d)[0].lower().replace("_", "-")
        for group in project["optional-dependencies"].values()
        for d in group
    }
    distributions = importlib.metadata.packages_distributions()
    imported: set[str] = set()
    for path in [*MODULES.values(), ROOT / "app.py"]:
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


def test_public_api__is_typed_and_its_hints_resolve():
    import inspect
    import typing

    import probe

    assert (PACKAGE / "py.typed").is_file()
    for name in probe.__all__:
        value = getattr(probe, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            hints = typing.get_type_hints(value.__init__ if inspect.isclass(value) else value)
            assert hints is not None, name


def test_docs__the_map_lists_every_module_and_only_modules_that_exist():
    # docs/architecture.md's sections "The modules" and "Old names" name each module by its path under probe/
    # (`core/io.py`, `__init__.py`); an __init__.py that holds only a docstring is no module to describe
    text = (ROOT / "docs" / "architecture.md").read_text()
    text = text[text.index("## The modules") : text.index("## Where new things go")]
    named = set(re.findall(r"`([\w/]+\.py)`", text))
    files = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    empty = {f for f in files if f.endswith("__init__.py") and len(ast.parse((PACKAGE / f).read_text()).body) <= 1}
    assert sorted(files - empty - named) == [], "modules the map does not list"
    assert sorted(named - files) == [], "the map lists modules that do not exist"


def test_tests__every_test_module_has_its_own_file_name():
    """The test folders are not packages, so pytest imports each module by its file name: two alike break the
    collection of both (an 'import file mismatch' that stops the whole suite)."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
