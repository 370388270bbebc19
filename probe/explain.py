"""Alias kept for scripts written against probe 0.1's flat layout: ``probe.explain`` is now
:mod:`probe.readings.explain` (``Readout``, ``importance``, ``harden``, ``layer_lens``, ``explain``)."""

from typing import Any

from probe.readings import explain as _explain

__all__ = _explain.__all__


def __getattr__(name: str) -> Any:
    return getattr(_explain, name)
