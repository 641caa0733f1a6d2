"""``nrg reference --budget-s S --out DIR``: the book's GPU measurements in one call that changes no setting.

The cells the last run's budget stopped run first; then the meters and one
cell of each chapter; then every other cell, in priority order (meters,
sequence length, model comparison, quantization and pruning, the default
clock, on a GPU the batch sizes), as long as its estimated time fits in what is left of the budget;
the rest is listed with the reason. Rerun with the same DIR to resume (the
estimator's corrections are kept there). ``--plan`` only prints what a
budget would run on a given GPU. ``--archive PATH`` packs DIR into one file
of at most 16 MiB. Nothing on the GPU or the CPUs is ever changed.
"""
from __future__ import annotations

import argparse
from typing import Any

from nrg.errors import ParameterError


def _run(ns: argparse.Namespace) -> int:
    if ns.plan:
        from nrg.reference import plan as reference_plan

        result = reference_plan.plan(ns.budget_s, device=ns.device, out=ns.out, margin_s=ns.margin_s,
                                     gpu_name=ns.gpu_name, memory_gib=ns.gpu_memory_gib,
                                     bandwidth_gbs=ns.gpu_bandwidth_gbs, retry_failed=ns.retry_failed, chapters=ns.chapters)
        print(reference_plan.plan_text(result), end="")
        return 0
    if ns.out is None:
        raise ParameterError("--out is required (the run folder; reuse it to resume), except with --plan")
    given = [flag for flag, value in (("--gpu-name", ns.gpu_name), ("--gpu-memory-gib", ns.gpu_memory_gib),
                                      ("--gpu-bandwidth-gbs", ns.gpu_bandwidth_gbs)) if value is not None]
    if given:
        raise ParameterError(f"{given[0]} is only valid with --plan (a run measures the GPU it has)")
    from nrg.reference import run as reference

    summary = reference.run(ns.budget_s, ns.out, device=ns.device, margin_s=ns.margin_s,
                            progress=not ns.no_progress, retry_failed=ns.retry_failed,
                            one_per_part=ns.one_per_part, chapters=ns.chapters)
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
    parser.add_argument("--out", default=None,
                        help="output folder (one subfolder per chapter); reused to resume (required unless --plan)")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (small models)")
    parser.add_argument("--margin-s", type=float, default=None,
                        help="seconds kept free at the end (default: 5%% of the budget, at least 5 s)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run cells that failed in an earlier run again (cells the budget stopped always are)")
    parser.add_argument("--one-per-part", action="store_true",
                        help="only the meters and one ok cell per chapter: a quick check of the whole path")
    parser.add_argument("--chapters", nargs="+", default=None, metavar="STEM",
                        help="only these chapters' parts, e.g. 02_sequence_length (default: every chapter's)")
    parser.add_argument("--archive", default=None, help="also pack the folder into this .tar.gz (<= 16 MiB)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    plan = parser.add_argument_group("planning (nothing is run or written)")
    plan.add_argument("--plan", action="store_true",
                      help="print what the budget would run on the GPU below, in order, and what would not fit")
    plan.add_argument("--gpu-name", default=None, help="GPU to plan for (default: the local GPU, else an H100 80GB)")
    plan.add_argument("--gpu-memory-gib", type=float, default=None, help="its memory in GiB (default: as the name)")
    plan.add_argument("--gpu-bandwidth-gbs", type=float, default=None,
                      help="its peak memory bandwidth in GB/s (default: the data sheet of the name)")
    parser.set_defaults(func=_run)
