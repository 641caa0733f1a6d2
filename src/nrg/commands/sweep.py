"""``nrg sweep CONFIG.yaml --out DIR``: run a sweep without Jupyter.

This is how a GPU machine produces data for the book: copy the config, run
the command, copy ``DIR`` back; rerunning it resumes where it stopped.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_command(subparsers: Any) -> None:
    from nrg.cli import EXIT_CODES

    parser = subparsers.add_parser(
        "sweep", help="run a sweep config (YAML) and store one Parquet file per cell",
        description=__doc__.splitlines()[0], epilog=EXIT_CODES)
    parser.add_argument("config", help="sweep config file (YAML); keys: see nrg.sweep.config")
    parser.add_argument("--out", required=True, help="run directory (created; reused to resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--inline", action="store_true",
                        help="run cells in this process (isolate: false); faster, less robust")
    parser.add_argument("--retry-failed", action="store_true", help="rerun cells recorded as failed")
    parser.set_defaults(func=_run)


def _run(ns: argparse.Namespace) -> int:
    from nrg.errors import check_writable_dir
    from nrg.sweep.config import parse_config
    from nrg.sweep.run import run_sweep

    config = parse_config(Path(ns.config))    # a path, never YAML text: `conf.txt` is a file
    check_writable_dir("--out", ns.out)
    frame = run_sweep(config, ns.out, progress=not ns.no_progress,
                      isolate=False if ns.inline else None, retry_failed=ns.retry_failed)
    ids = {c.cell_id for c in config.cells()}
    if not frame.empty:
        frame = frame[frame["cell_id"].isin(ids)]   # the folder may hold other configs' cells
    if frame.empty:
        print(f"{ns.out}: no rows")
        return 0
    cells = frame.drop_duplicates("cell_id")
    counts = cells["status"].value_counts().to_dict()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"{ns.out}: {len(cells)} cells ({summary}), {len(frame)} rows")
    return 0 if counts.get("failed", 0) == 0 else 1
