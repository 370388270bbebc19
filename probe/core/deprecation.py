"""Old names kept for users' scripts: each still works, and says once per call site that it is deprecated, what
replaces it and in which version it goes (:data:`REMOVED_IN`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from importlib import import_module
from typing import Any

REMOVED_IN = "0.3.0"
"""The release that removes every name deprecated in the 0.1 and 0.2 series."""


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (a ``DeprecationWarning`` at the caller's line)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in probe {REMOVED_IN}; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def moved_module(old: str, new: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for an alias module ``old`` whose names now live in module ``new``: every name is
    served from ``new``, with a deprecation warning that names both.

    Example::

        __getattr__, __dir__ = moved_module(__name__, "probe.tasks.kinds")
    """

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(import_module(new), name)
        warn_renamed(f"{old}.{name}", f"{new}.{name}")
        return value

    def __dir__() -> list[str]:
        return sorted(n for n in dir(import_module(new)) if not n.startswith("_"))

    return __getattr__, __dir__


def renamed(names: dict[str, str], where: str) -> Callable[[str], Any] | None:
    """A look-up for a lazy module's old names: ``names`` maps an old name to the dotted path of what replaced
    it; the returned function serves the replacement with a warning, or raises ``AttributeError``."""

    def lookup(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module '{where}' has no attribute {name!r}")
        module, _, attribute = names[name].rpartition(".")
        warn_renamed(f"{where}.{name}", names[name])
        return getattr(import_module(module), attribute)

    return lookup
