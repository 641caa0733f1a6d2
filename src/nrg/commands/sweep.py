"""``nrg sweep CONFIG.yaml --out DIR``: run a sweep without Jupyter.

This is how a GPU machine produces data for the book: copy the config, run
the command, copy ``DIR`` back; rerunning it resumes where it stopped.
"""
from __future__ import annotations

import argparse
from typing import Any


def add_command(subparsers: Any) -> None:
    """Register ``nrg sweep CONFIG --out DIR`` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "sweep", help="run a sweep config (YAML) and store one Parquet file per cell",
        description=__doc__.splitlines()[0])
    parser.add_argument("config", help="sweep config file (YAML); keys: see nrg.sweep.config")
    parser.add_argument("--out", required=True, help="run directory (created; reused to resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--inline", action="store_true",
                        help="run cells in this process (isolate: false); faster, less robust")
    parser.add_argument("--retry-failed", action="store_true", help="rerun cells recorded as failed")
    parser.add_argument("--executor", choices=("local", "ray"), default=None,
                        help="local: cells one after another here (default); ray: one Ray task per cell "
                             "(pip install nrg[ray])")
    parser.add_argument("--address", default=None,
                        help="with --executor ray: the cluster (auto, HOST:PORT); default: a Ray instance "
                             "on this machine")
    parser.set_defaults(func=_run)


def _run(ns: argparse.Namespace) -> int:
    from nrg.sweep.run import run_sweep

    frame = run_sweep(ns.config, ns.out, progress=not ns.no_progress,
                      isolate=False if ns.inline else None, retry_failed=ns.retry_failed,
                      executor=ns.executor, ray_address=ns.address)
    if frame.empty:
        print(f"{ns.out}: no rows")
        return 0
    cells = frame.drop_duplicates("cell_id")
    counts = cells["status"].value_counts().to_dict()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"{ns.out}: {len(cells)} cells ({summary}), {len(frame)} rows")
    return 0 if counts.get("failed", 0) == 0 else 1
