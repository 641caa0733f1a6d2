"""``nrg reference --budget-s S --out DIR``: the book's GPU measurements in one call that changes no setting.

In priority order -- meters, sequence length, model comparison, quantization
and pruning, the default clock -- every cell whose estimated time fits in
what is left of the budget runs; the rest is listed with the reason. Rerun
with the same DIR to resume. ``--archive PATH`` packs DIR into one file of at
most 16 MiB. Nothing on the GPU or the CPUs is ever changed.
"""
from __future__ import annotations

import argparse
from typing import Any


def _run(ns: argparse.Namespace) -> int:
    from nrg import reference

    summary = reference.run(ns.budget_s, ns.out, device=ns.device, margin_s=ns.margin_s,
                            progress=not ns.no_progress)
    print(reference.summary_text(summary), end="")
    if ns.archive:
        packed = reference.archive(ns.out, ns.archive)
        print(f"archive: {packed['path']} ({packed['bytes'] / 2**20:.2f} MiB"
              + ("" if packed["logs"] else ", cell logs left out to fit") + ")")
    return 0


def add_command(subparsers: Any) -> None:
    """Register ``nrg reference``."""
    parser = subparsers.add_parser(
        "reference", help="measure the book's GPU data within a time budget, changing no setting",
        description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, required=True, help="seconds the whole run may take")
    parser.add_argument("--out", required=True, help="output folder (one subfolder per chapter); reused to resume")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (small models)")
    parser.add_argument("--margin-s", type=float, default=None,
                        help="seconds kept free at the end (default: 5%% of the budget, at least 5 s)")
    parser.add_argument("--archive", default=None, help="also pack the folder into this .tar.gz (<= 16 MiB)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run)
