"""The parts every subcommand is built from: ``option`` (a dataclass field that is also a CLI option, its help
written once), the :class:`Command` base that checks its fields, and output helpers.

Field metadata understood by the parser: ``help``; ``positional``; ``short`` ("-k"); ``aliases`` (old flag
names kept working); ``type`` (a converter for values that are not plain str / int / float); ``positive`` (a
number that must be > 0, checked here in one place); ``counts`` (a number that must be 0 or more: 0 turns it off);
``exists`` (a path that must exist, checked here, before anything heavy loads); ``nargs``; ``flag`` (a flag name
other than the field's).
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from probe.core.io import atomic_write_text

Format = Literal["md", "json", "csv"]


def option(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = None, **meta: Any) -> Any:
    """A dataclass field that is also a CLI option (see the module docstring for ``meta``)."""
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


def budget_minutes_option(which: str = "") -> Any:
    """``--budget-minutes``: the time budget of a long reading (``probe.core.budget``); ``which`` says which
    reading of the command has an estimate, where not all do."""
    return option(
        None,
        f"refuse the reading{which}, before any work, when its time estimate passes this many minutes (default "
        "$PROBE_BUDGET_MINUTES, else no budget)",
        positive=True,
    )


def budget_gb_option() -> Any:
    """``--budget-gb``: the memory budget of a reading whose arrays are known before the work."""
    return option(
        None,
        "refuse the reading, before any work, when its memory estimate passes this many GB (default $PROBE_BUDGET_GB, "
        "else no budget)",
        positive=True,
    )


def emit(text: str, out: str | None) -> None:
    """Write command output to ``out`` atomically (saying so on stderr), or to stdout."""
    text = text if text.endswith("\n") else text + "\n"
    if out:
        atomic_write_text(out, text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def table_text(df: Any, fmt: str) -> str:
    """A DataFrame as csv, json records, or a markdown table."""
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", indent=2)
    return df.to_markdown(index=False, floatfmt=".4f")


@dataclass
class Command:
    """Base of every subcommand: checks ``positive`` and ``exists`` fields, then the subclass's own rules."""

    name: ClassVar[str]
    summary: ClassVar[str]
    epilog: ClassVar[str] = ""
    """More help shown after the options (``probe COMMAND --help``): what the command writes, say."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value, flag = getattr(self, f.name), option_flag(f)
            choices = literal_choices(hints[f.name])
            if choices and value is not None and value not in choices:
                raise ValueError(f"{flag} is {value!r}; expected one of {', '.join(map(str, choices))}")
            counts = f.metadata.get("counts") and value is not None
            if counts and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{flag} is {value!r}; expected a count: 0 (off) or more")
            if not f.metadata.get("positive") or value is None:
                continue
            for v in value if isinstance(value, list | tuple) else [value]:
                if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                    raise ValueError(f"{flag} is {v!r}; expected a positive number")
        for f in dataclasses.fields(self):  # then the paths, still before anything heavy loads
            value = getattr(self, f.name)
            if f.metadata.get("exists") and value is not None and not Path(value).exists():
                raise FileNotFoundError(f"{option_flag(f)} '{value}' does not exist (expected: {f.metadata['help']})")
        if getattr(self, "format", "") is None:  # not given: --out's suffix (rep.json) when the command writes it
            suffix = Path(getattr(self, "out", None) or "").suffix.lower().lstrip(".")
            formats = literal_choices(hints["format"])
            setattr(self, "format", suffix if suffix in formats else "md")  # noqa: B010

    def run(self) -> int:
        """Do the work; returns the exit status."""
        raise NotImplementedError


def option_flag(f: dataclasses.Field[Any]) -> str:
    """The option's name on the command line (``--all-tokens`` for ``all_tokens``, or its ``flag``)."""
    if f.metadata.get("positional"):
        return f.metadata.get("metavar", f.name)
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def literal_choices(hint: Any) -> tuple[Any, ...]:
    """The allowed values of a ``Literal[...]`` (or ``Literal[...] | None``) hint; empty for other types."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    for arg in typing.get_args(hint):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return ()


def labels_option(text: str | None) -> list[str] | None:
    """``--labels a,b,c`` as a list (None when not given)."""
    if text is None:
        return None
    labels = [x.strip() for x in text.split(",")]
    if not all(labels):
        raise ValueError(f"--labels {text!r} has an empty label; give comma-separated names like 'a,b,c'")
    return labels
