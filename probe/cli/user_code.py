"""A function of the user's own named on the command line (``--loss MODULE:FUNCTION`` or ``--loss
FILE.py:FUNCTION``), imported as Python imports it: the user's own code, run because they named it, as ``pytest`` or
``uvicorn`` run theirs. Nothing is unpickled."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def load_function(spec: str, option: str) -> Callable[..., Any]:
    """The function ``spec`` names: ``package.module:name`` (importable from the current folder or the installed
    packages) or ``path/to/file.py:name``.

    Raises:
        ValueError: ``spec`` is not of that form, its module or file cannot be imported, or it names no function;
            in one line naming ``option``.
    """
    where, _, name = spec.rpartition(":")
    if not where or not name.isidentifier():
        raise ValueError(f"{option} is {spec!r}; expected MODULE:FUNCTION or FILE.py:FUNCTION")
    if where.endswith(".py") and not Path(where).is_file():
        raise ValueError(f"{option}: the file {where!r} does not exist")
    try:
        module = _from_file(Path(where)) if where.endswith(".py") else _from_module(where)
    except Exception as e:  # the user's module failed on import: say where, in one line
        raise ValueError(f"{option}: importing {where!r} failed: {type(e).__name__}: {' '.join(str(e).split())}") from e
    found = getattr(module, name, None)
    if not callable(found):
        raise ValueError(f"{option}: {where!r} has no function {name!r}")
    return found


def _from_module(name: str) -> Any:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` does: the current folder's modules import
    return importlib.import_module(name)


def _from_file(path: Path) -> Any:
    name = f"probe_user_code_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{str(path)!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import does: dataclasses and pickling look their module up there
    spec.loader.exec_module(module)
    return module
