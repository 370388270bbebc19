"""What every result probe returns has in common: it converts to a table, markdown, JSON and CSV, shows itself as
markdown in a notebook, and its ``repr`` is one short line (not every array it holds).

A result class subclasses :class:`Result`, is a ``@dataclass(repr=False)``, and implements :meth:`headline` and
:meth:`to_dataframe` (and :meth:`to_markdown` / :meth:`to_dict` where the defaults are not the right ones).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from probe.core.io import atomic_write_text, dumps


class Result:
    """The conversions every result offers (see the module docstring)."""

    def headline(self) -> str:
        """The result in a few words, for ``repr``."""
        return ""

    def to_dataframe(self) -> Any:
        """The result as a tidy table (a pandas DataFrame)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready after :func:`probe.core.io.to_jsonable`)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as strict JSON (NaN as null)."""
        return dumps(self.to_dict(), indent=json_indent(indent))

    def to_csv(self) -> str:
        """:meth:`to_dataframe` as CSV text."""
        return str(self.to_dataframe().to_csv(index=False))

    def to_markdown(self) -> str:
        """A readable markdown rendering (by default, :meth:`to_dataframe` as a table)."""
        return str(self.to_dataframe().to_markdown(index=False, floatfmt=".3f"))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the result to ``path`` as its suffix says (``.json``, ``.csv``, ``.md``), atomically; the path.

        Raises:
            ValueError: another suffix.
        """
        target = Path(path)
        export = {".json": self.to_json, ".csv": self.to_csv, ".md": self.to_markdown}.get(target.suffix.lower())
        if export is None:
            raise ValueError(f"save({str(path)!r}): expected a file ending in .json, .csv or .md (the format to write)")
        text = export()
        atomic_write_text(target, text if text.endswith("\n") else text + "\n")
        return target

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.headline()})"


def json_indent(indent: Any) -> int | None:
    """``indent`` checked: ``to_json``'s argument is the indent, not a file (a path there was taken as the indent
    string, and no file written).

    Raises:
        TypeError: anything but a whole number or None.
    """
    if indent is None or (isinstance(indent, int) and not isinstance(indent, bool)):
        return indent
    raise TypeError(
        f"to_json(indent) takes the indent (a whole number or None) and returns the text; given {indent!r}. To write "
        "a file: result.save('report.json') (.json, .csv or .md)"
    )


def shown(value: Any, spec: str = ".3f") -> str:
    """A number as a table shows it: ``format(value, spec)``, or '–' where it is unknown or undefined (None, NaN,
    infinite: a gain over zero-shot the prompt does not have, say)."""
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return format(value, spec)
