"""The ``probe`` command line: subcommands map onto the same dataclasses and library calls as the API.

Errors print one line on stderr and exit with status 2 (1 for an unexpected crash); ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from probe.util import atomic_write_text

logger = logging.getLogger("probe")

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, TypeError, KeyError, OSError)
FORMATS = ("md", "json", "csv")


def emit(text: str, out: str | None) -> None:
    """Write command output to ``out`` atomically (saying so on stderr), or to stdout."""
    text = text if text.endswith("\n") else text + "\n"
    if out:
        atomic_write_text(out, text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _labels(text: str | None) -> list[str] | None:
    if text is None:
        return None
    labels = [x.strip() for x in text.split(",")]
    if not all(labels):
        raise ValueError(f"--labels {text!r} has an empty label; give comma-separated names like 'a,b,c'")
    return labels


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# --------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    from probe.models import load_model
    from probe.prompts import load_prompt
    from probe.reports import nearest_tokens

    prompt = load_prompt(args.prompt, key=args.key, role=args.role)
    model_name = args.model or prompt.base_model or "default"
    model = load_model(model_name, device="cpu", trust_remote_code=args.trust_remote_code)
    labels = _labels(args.labels)
    if labels is None and prompt.metadata.get("run"):
        from probe.runs import load_run

        labels = load_run(args.prompt).labels or None
    index = None
    if args.all_tokens:
        from probe.index import TokenFilter, VocabIndex

        index = VocabIndex.for_model(model, token_filter=TokenFilter(exclude_special=False, exclude_unused=False))
    report = nearest_tokens(prompt, model, k=args.k, labels=labels, controls=args.controls, index=index)
    text = {"md": report.to_markdown, "json": report.to_json, "csv": report.to_csv}[args.format]()
    emit(text, args.out)
    return 0


def _add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="nearest-token report for a soft prompt",
        description="Nearest vocabulary tokens of every position of a soft prompt.",
    )
    p.add_argument("prompt", help="PEFT adapter folder, .safetensors, .pt/.pth, .npy, or a probe run folder")
    p.add_argument("--model", help="model name or folder (default: the one the prompt records, else 'default')")
    p.add_argument("-k", type=_positive_int, default=5, help="neighbours per position (default 5)")
    p.add_argument("--labels", help="comma-separated class labels to mark in the neighbours")
    p.add_argument("--format", choices=FORMATS, default="md", help="output format (default md)")
    p.add_argument("--out", help="write to this file instead of stdout")
    p.add_argument("--key", help="tensor name in a file holding several")
    p.add_argument("--role", choices=("encoder", "decoder"), help="which half of a seq2seq adapter")
    p.add_argument("--controls", action="store_true", help="add random-vector and sampled-vocab controls")
    p.add_argument(
        "--all-tokens",
        action="store_true",
        help="search every vocabulary row (by default special and [unused] tokens are left out)",
    )
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model repo's own code")
    p.set_defaults(func=cmd_report)


# --------------------------------------------------------------------------- entry point

_EXTRA_COMMANDS: list[Callable[[Any], None]] = []


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="probe", description="Make soft prompts readable.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_report(sub)
    for add in _EXTRA_COMMANDS:
        add(sub)
    return parser


def _version() -> str:
    from probe import __version__

    return f"probe {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    _register_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    _quiet_libraries(args.debug)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("probe: interrupted", file=sys.stderr)
        return 130
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


def _quiet_libraries(debug: bool) -> None:
    """The CLI's stderr is for probe's own lines; library chatter and load bars only with --debug."""
    if debug:
        return
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore")


def _one_line(e: BaseException) -> str:
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(text.split()) or type(e).__name__


def _register_commands() -> None:
    if _EXTRA_COMMANDS:
        return
    from probe import commands

    _EXTRA_COMMANDS.extend(commands.ALL)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
