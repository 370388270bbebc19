"""The ``probe`` command line: one dataclass per subcommand, a parser built from them, one-line errors."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI (the ``probe`` entry point); returns the exit status. See :mod:`probe.cli.parser`."""
    from probe.cli.parser import main as run

    return run(argv)


__all__ = ["main"]
