"""The nrg command line: one sub-command per job (meters, models, sweep, dvfs, book, reference).

Each sub-command lives in its own light module under :mod:`nrg.commands` that
defines ``add_command(subparsers)``; heavy imports (torch, transformers, pandas)
happen inside the command's function, so ``nrg --help`` stays fast.

A user error never prints a traceback: one line naming what to fix
(``--debug`` anywhere on the line shows the traceback). Exit status: 0 all
done and ok, 1 some cells failed (recorded, rerun with ``--retry-failed``),
2 bad input or a problem of this machine's environment (a missing package,
a folder nrg may not write; nothing was done), 3 an unexpected error of nrg
itself, 130 interrupted (Ctrl-C, SIGTERM, SIGHUP; a rerun resumes).
"""
from __future__ import annotations

import argparse
import errno
import importlib
import sys
import traceback
from collections.abc import Sequence

from nrg import __version__
from nrg.errors import ParameterError

COMMANDS: tuple[str, ...] = ("meters", "models", "sweep", "dvfs", "book", "reference")
EXIT_OK, EXIT_CELLS_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = ("exit status: 0 all cells ok; 1 some cells failed (their rows say why; rerun with "
              "--retry-failed); 2 bad input or an environment problem such as a missing package or a "
              "folder nrg may not write (nothing was done or written); 3 unexpected error of "
              "nrg; 130 interrupted by Ctrl-C, SIGTERM or SIGHUP (finished cells are kept: rerun to "
              "resume). Add --debug to see the traceback of an error.")
DESCRIPTION = ("Measure and explain the energy of LLM inference and fine-tuning. "
               "Run `nrg COMMAND --help` for a command's options.")
MAX_MESSAGE_CHARS = 2000   # an error line, however large the value it quotes (a YAML alias bomb)
_ENVIRONMENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


class ParagraphFormatter(argparse.HelpFormatter):
    """Wraps each paragraph of a description or epilog on its own (a blank line separates them)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(super(ParagraphFormatter, self)._fill_text(part, width, indent)
                             for part in text.split("\n\n"))


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every sub-command whose module exists."""
    parser = argparse.ArgumentParser(prog="nrg", description=DESCRIPTION, epilog=EXIT_CODES,
                                     formatter_class=ParagraphFormatter)
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
    for child in _subparsers(parser):
        child.formatter_class = ParagraphFormatter
        if EXIT_CODES not in (child.epilog or ""):   # every command's help says what its exit status means
            child.epilog = f"{child.epilog}\n\n{EXIT_CODES}" if child.epilog else EXIT_CODES
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every (sub-)sub-command parser below ``parser``, depth first."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):   # aliases share a parser
                found += [child, *_subparsers(child)]
    return found


def _chosen(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost sub-command parser the command line chose (``nrg book run`` -> its parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(ns, action.dest or "", None)
            if name in action.choices:
                return _chosen(action.choices[name], ns)
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
    ns, extra = parser.parse_known_args(argv)
    if extra:  # say it with the usage of the command that was typed, not the top level's
        _chosen(parser, ns).error(f"unrecognized arguments: {' '.join(extra)}")
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
    except Exception as exc:  # one line, not a traceback; --debug shows it
        environment = environment_problem(exc)
        if environment is not None:
            return _fail(ns.command, environment, debug, EXIT_BAD_INPUT)
        hint = "" if debug else " (rerun with --debug for the traceback)"
        return _fail(ns.command, f"{type(exc).__name__}: {exc}{hint}", debug, EXIT_INTERNAL)


def environment_problem(exc: BaseException) -> str | None:
    """One line when ``exc`` is this machine's environment, not a bug of nrg; else None.

    A missing third-party package (``ModuleNotFoundError`` naming a module
    outside nrg) and a file-system refusal (permission, read-only file system,
    disk full) are fixed by whoever runs nrg, so they exit 2, not 3.
    """
    if isinstance(exc, ImportError) and exc.name and exc.name.split(".")[0] != "nrg":
        top = exc.name.split(".")[0]
        return (f"environment problem: the Python package providing {top!r} is missing or broken "
                f"here ({exc}); install it (pip install -c constraints.txt -e '.[EXTRA]' from the "
                "repository, see the README) or use an option that does without it")
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        where = f": {exc.filename}" if exc.filename else ""
        return f"environment problem: {exc.strerror or exc}{where} (a folder or file nrg may not use here)"
    return None


def _fail(command: str, message: str, debug: bool, status: int, prefix: str = "error: ") -> int:
    if debug:
        traceback.print_exc()
    if len(message) > MAX_MESSAGE_CHARS:
        cut = len(message) - MAX_MESSAGE_CHARS
        message = f"{message[:MAX_MESSAGE_CHARS - 200]} ... [{cut:,} characters left out] ... {message[-200:]}"
    print(f"nrg {command}: {prefix}{message}", file=sys.stderr)
    return status
