"""The ``nrg`` command line: ``nrg meters``, ``nrg models``, ``nrg sweep`` ...

Each sub-command lives in its own light module under :mod:`nrg.commands` that
defines ``add_command(subparsers)``; heavy imports (torch, transformers, pandas)
happen inside the command's function, so ``nrg --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nrg import __version__
from nrg.errors import ParameterError

COMMANDS: tuple[str, ...] = ("meters", "models", "sweep", "dvfs", "book", "reference")


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if not getattr(ns, "func", None):
        parser.print_help()
        return 2
    try:
        return int(ns.func(ns) or 0)
    except ParameterError as exc:
        print(f"nrg {ns.command}: error: {exc}", file=sys.stderr)
        return 2
