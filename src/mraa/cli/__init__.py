"""Command line: ``mraa <command> ...``. A thin layer over the Python API.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``; the parser it
creates sets ``func`` to a callable taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from mraa.errors import MRAAError

# command modules, in the order `mraa --help` lists them
COMMANDS = (
    "animate",
    "crop",
    "info",
    "segment",
    "swap",
    "demo",
    "train",
    "train_avd",
    "reconstruct",
    "evaluate",
    "export",
    "synth",
    "prepare",
    "toy",
    "app",
    "web",
)


def build_parser() -> argparse.ArgumentParser:
    from mraa import __version__

    parser = argparse.ArgumentParser(
        prog="mraa",
        description="Motion Representations for Articulated Animation: animate, train, segment, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"mraa {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"mraa.cli.{name}")
        except ModuleNotFoundError as exc:  # a command whose module is not part of this build
            if exc.name == f"mraa.cli.{name}":
                continue
            raise
        module.add_parser(subparsers)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, but a sub-command's unknown options are reported with that sub-command's usage
    (argparse passes them up to the top-level parser, which would print ``mraa``'s usage instead)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        command = subparsers.choices.get(getattr(args, "command", None) or "", parser)
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mraa`` console script. Returns the exit code."""
    from mraa import runtime

    threads = runtime.prepare_process()  # before any command imports torch: OpenMP reads its env once
    parser = build_parser()
    args = parse_args(parser, argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s: %(message)s",
        force=True,
    )
    logging.getLogger("mraa.runtime").debug("threads: %s", threads.describe())
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (MRAAError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        if args.verbose:  # the traceback with the cause chain (raise ... from err) behind the message
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user error: one line, the traceback with --verbose
        if args.verbose:
            traceback.print_exc()
        print(
            f"error: unexpected {exc.__class__.__name__}: {exc} (rerun with -v for details)", file=sys.stderr
        )
        return 1


def run() -> None:
    sys.exit(main())
