"""Old names kept for users' scripts: each still works, and says once per call site that it is deprecated, what
replaces it and in which version it goes (:data:`REMOVED_IN`)."""

from __future__ import annotations

import inspect
import sys
import types
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


def moved_module(
    old: str, new: str, elsewhere: dict[str, str] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for an alias module ``old`` whose names now live in module ``new`` (or, for the
    names of ``elsewhere``, in the module it gives): every name is served from there, with a deprecation warning
    that names both.

    Example::

        __getattr__, __dir__ = moved_module(__name__, "probe.tasks.kinds")
    """
    elsewhere = elsewhere or {}

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        home = elsewhere.get(name, new)
        value = getattr(import_module(home), name)
        warn_renamed(f"{old}.{name}", f"{home}.{name}")
        return value

    def __dir__() -> list[str]:
        return sorted({n for n in dir(import_module(new)) if not n.startswith("_")} | set(elsewhere))

    return __getattr__, __dir__


def renamed(old: str, new: str) -> Any:
    """What the dotted path ``new`` names (a module's attribute), served for the old name ``old`` with a warning."""
    module, _, attribute = new.rpartition(".")
    warn_renamed(old, new, stacklevel=4)
    return getattr(import_module(module), attribute)


class _CallableModule(types.ModuleType):
    """A module that can also be called, as the function :func:`callable_module` gave it."""

    __function__: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        """The function's own (``inspect.signature``, a notebook's ``probe.explain?``), not ``(*args, **kwargs)``."""
        return inspect.signature(self._function())

    def _function(self) -> Any:
        module, _, attribute = self.__function__.rpartition(".")
        return getattr(import_module(module), attribute)


def callable_module(name: str, function: str) -> None:
    """Make the module ``name`` callable as the function at the dotted path ``function``: for a public name that is
    both a function now and the module it used to be (``probe.explain(...)`` and ``from probe.explain import
    Readout``)."""
    module = sys.modules[name]
    module.__class__ = _CallableModule
    module.__function__ = function  # type: ignore[attr-defined]
