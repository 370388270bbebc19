"""The ``probe`` command line: a parser built from the subcommand dataclasses in :mod:`probe.cli.commands`.

Errors print one line on stderr and exit with status 2 (1 for an unexpected crash); ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import errno
import inspect
import logging
import re
import sys
import types
import typing
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from probe.cli.audit import Audit
from probe.cli.commands import Compare, Demo, Drift, Report, Train
from probe.cli.dashboard import Dashboard
from probe.cli.explain import Explain
from probe.cli.frontier import Frontier
from probe.cli.harden import Harden
from probe.cli.options import Command, literal_choices, option_flag
from probe.cli.replicate import Replicate
from probe.cli.wayward import Wayward
from probe.core.budget import budget_gb, budget_minutes
from probe.core.threads import env_threads

logger = logging.getLogger("probe")

COMMANDS: tuple[type[Command], ...] = (
    Report,
    Train,
    Drift,
    Compare,
    Demo,
    Dashboard,
    Replicate,
    Explain,
    Harden,
    Frontier,
    Wayward,
    Audit,
)
"""The subcommands, in the order ``probe --help`` lists them."""

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, TypeError, KeyError, OSError)


def _positive_int(text: str) -> int:
    value = _int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _plain(hint: Any) -> Any:
    """``X`` for ``X | None``; the hint itself otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one option per field of the dataclass ``cls``, its own fields before those it inherits; fields that are
    dataclasses add theirs in turn."""
    hints = typing.get_type_hints(cls)
    own = inspect.get_annotations(cls)
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.name not in own):
        hint = _plain(hints[f.name])
        if dataclasses.is_dataclass(hint):
            add_dataclass_arguments(parser, hint)  # type: ignore[arg-type]
            continue
        meta = f.metadata
        default = None if f.default is dataclasses.MISSING else f.default
        help_text = meta.get("help", "")
        if hint is bool:
            parser.add_argument(
                option_flag(f), *meta.get("aliases", ()), dest=f.name, action="store_true", help=help_text
            )
            continue
        kwargs: dict[str, Any] = {"help": help_text}
        choices = literal_choices(hint)
        if "type" in meta:
            kwargs["type"] = meta["type"]
        elif choices:
            kwargs["choices"] = choices
        else:
            item = _plain(typing.get_args(hint)[0]) if typing.get_origin(hint) in (list, tuple) else hint
            if item is int:
                kwargs["type"] = _positive_int if meta.get("positive") else _int
            elif item is float:
                kwargs["type"] = _float
        if "nargs" in meta:
            kwargs["nargs"] = meta["nargs"]
        if meta.get("positional"):
            if f.default is not dataclasses.MISSING:
                kwargs.update(nargs="?", default=default)
            parser.add_argument(f.name, metavar=meta.get("metavar", f.name), **kwargs)
            continue
        names = [meta["short"]] if "short" in meta else []
        names += [option_flag(f), *meta.get("aliases", ())]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        parser.add_argument(*names, dest=f.name, **kwargs)


def from_namespace(cls: Any, args: argparse.Namespace) -> Any:
    """Build the dataclass ``cls`` (and its nested dataclass fields) from parsed arguments."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        hint = _plain(hints[f.name])
        values[f.name] = from_namespace(hint, args) if dataclasses.is_dataclass(hint) else getattr(args, f.name)
    return cls(**values)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, with a "did you mean" for a mistyped command or option."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}{_suggestion(self, message)}\n")


def _suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    known: list[str] = []
    for action in parser._actions:
        known += list(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            known += list(action.choices)
            for sub in action.choices.values():  # unknown options are reported by the top parser
                known += [o for a in sub._actions for o in a.option_strings]
    words = re.findall(r"'([^']+)'", message) + re.findall(r"(--?[\w-]+)", message.split(":", 1)[-1])
    for word in words:
        close = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.6)
        if close and close[0] != word:
            return f" (did you mean {close[0]}?)"
    return ""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(prog="probe", description="Make soft prompts readable.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        p = sub.add_parser(
            command.name,
            help=command.summary,
            description=(command.__doc__ or "").split("\n")[0],
            epilog=command.epilog or None,
        )
        add_dataclass_arguments(p, command)
        p.set_defaults(command_class=command)
    return parser


def _refuse_unknown(parser: argparse.ArgumentParser, command: str | None, extra: list[str]) -> NoReturn:
    """Arguments no parser took, said by the subcommand's own parser (its name; its options for a "did you mean"),
    naming the commands an option belongs to when it is another command's."""
    commands: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands = action.choices
    own = commands.get(command) if command else None
    if own is None:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    options = {word.split("=")[0] for word in extra if word.startswith("-")}
    elsewhere = [f"probe {name}" for name, sub in commands.items() if options & set(_options(sub))]
    if not elsewhere:
        own.error(f"unrecognized arguments: {' '.join(extra)}")
    own.exit(
        2,
        f"{own.prog}: error: {', '.join(sorted(options))} is an option of {', '.join(elsewhere)}, not of {own.prog}\n",
    )


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings]


def _version() -> str:
    from probe import __version__

    return f"probe {__version__}"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so that it stops as Ctrl-C stops it (a grid's workers stopped too)."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    import signal
    import threading

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _refuse_unknown(parser, args.command, extra)
    if args.command is None:
        parser.print_help()
        return 2
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        env_threads()  # a bad $PROBE_THREADS is refused before any work, not at the first search
        budget_minutes(), budget_gb()  # so is a bad $PROBE_BUDGET_MINUTES or $PROBE_BUDGET_GB
        command: Command = from_namespace(args.command_class, args)  # values and paths, checked before torch loads
        with _cli_logging(args.debug):
            return int(command.run() or 0)
    except KeyboardInterrupt as e:
        print("probe: terminated" if isinstance(e, Terminated) else "probe: interrupted", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except USER_ERRORS as e:
        if args.debug:
            raise
        hint = ""
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            hint = " (the disk is full: free some space or write elsewhere; files already written are intact)"
        print(f"probe {args.command}: error: {_one_line(e)}{hint}", file=sys.stderr)
        return 2
    except Exception as e:  # a crash still gets one line; --debug shows where
        if args.debug:
            raise
        print(
            f"probe {args.command}: unexpected {type(e).__name__}: {_one_line(e)} (rerun with --debug)",
            file=sys.stderr,
        )
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _cli_logging(debug: bool) -> Iterator[None]:
    """probe's own lines on stderr; library chatter and load bars only with --debug. Restored on exit, so a
    script or test that calls :func:`main` keeps its own logging and warning settings."""
    from transformers.utils import logging as hf_logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level, verbosity, bars = root.level, hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    with warnings.catch_warnings():
        if not debug:
            warnings.simplefilter("ignore")
            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()


def _one_line(e: BaseException) -> str:
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(text.split()) or type(e).__name__


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
