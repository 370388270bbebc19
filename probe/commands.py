"""CLI subcommands beyond ``report`` (train, drift, compare, demo, dashboard); each adds its own parser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ALL: list[Callable[[Any], None]] = []
