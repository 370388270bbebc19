"""Alias kept for scripts written against probe 0.1's flat layout: ``probe.drift`` is now
:mod:`probe.readings.drift`."""

from probe.readings.drift import *  # noqa: F403
from probe.readings.drift import __all__  # noqa: F401
