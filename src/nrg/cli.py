"""The ``nrg`` command line: ``nrg meters``, ``nrg models``, ``nrg sweep`` ...

Each sub-command lives in its own light module under :mod:`nrg.commands` that
defines ``add_command(subparsers)``; heavy imports (torch, transformers, pandas)
happen inside the command's function, so ``nrg --help`` stays fast.

A user error never prints a traceback: one line naming what to fix
(``--debug`` anywhere on the line shows the traceback). Exit status: 0 all
done and ok, 1 some cells failed (recorded, rerun with ``--retry-failed``),
2 bad input (nothing was done or written), 3 an unexpected error of nrg
itself, 130 interrupted (Ctrl-C, SIGTERM, SIGHUP; a rerun resumes).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from nrg import __version__
from nrg.errors import ParameterError

COMMANDS: tuple[str, ...] = ("meters", "models", "sweep", "dvfs", "book", "reference")
EXIT_OK, EXIT_CELLS_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = ("exit status: 0 all cells ok; 1 some cells failed (their rows say why; rerun with "
              "--retry-failed); 2 bad input (nothing was done or written); 3 unexpected error of "
              "nrg; 130 interrupted by Ctrl-C, SIGTERM or SIGHUP (finished cells are kept: rerun to "
              "resume). Add --debug to see the traceback of an error.")


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every sub-command whose module exists."""
    parser = argparse.ArgumentParser(prog="nrg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"nrg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module_name = f"nrg.commands.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.add_command(sub)
    _add_debug(parser, top=True)
    return parser


def _add_debug(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``--debug`` on every (sub-)command, so it works wherever it is typed."""
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="show the traceback of an error")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_debug(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if not getattr(ns, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    debug = bool(getattr(ns, "debug", False))
    try:
        return int(ns.func(ns) or 0)
    except ParameterError as exc:
        return _fail(ns.command, str(exc), debug, EXIT_BAD_INPUT)
    except KeyboardInterrupt as exc:
        message = getattr(exc, "message", None) or "interrupted, rerun to resume"
        return _fail(ns.command, message, debug, EXIT_INTERRUPTED, prefix="")
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback; --debug shows it
        hint = "" if debug else " (rerun with --debug for the traceback)"
        return _fail(ns.command, f"{type(exc).__name__}: {exc}{hint}", debug, EXIT_INTERNAL)


def _fail(command: str, message: str, debug: bool, status: int, prefix: str = "error: ") -> int:
    if debug:
        traceback.print_exc()
    print(f"nrg {command}: {prefix}{message}", file=sys.stderr)
    return status
