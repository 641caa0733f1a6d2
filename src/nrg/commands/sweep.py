"""``nrg sweep CONFIG.yaml --out DIR``: run a sweep without Jupyter.

This is how a GPU machine produces data for the book: copy the config, run
the command, copy ``DIR`` back; rerunning it resumes where it stopped.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any


def add_command(subparsers: Any) -> None:
    """Register ``nrg sweep CONFIG --out DIR`` on the CLI's subparsers (exit codes in its epilog)."""
    from nrg.commands.cli import EXIT_CODES

    parser = subparsers.add_parser(
        "sweep", help="run a sweep config (YAML) and store one Parquet file per cell",
        description=__doc__.splitlines()[0], epilog=EXIT_CODES)
    parser.add_argument("config", help="sweep config file (YAML); keys: see nrg.sweep.config")
    parser.add_argument("--out", required=True, help="run directory (created; reused to resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--inline", action="store_true",
                        help="run cells in this process (isolate: false); faster, less robust")
    parser.add_argument("--retry-failed", action="store_true", help="rerun cells recorded as failed")
    parser.add_argument("--allow-hardware-settings", action="store_true",
                        help="consent to the config's clock / power-limit / cpufreq axes changing this "
                             "machine (restored after each cell); same as allow_hardware_settings: true")
    parser.add_argument("--executor", choices=("local", "ray"), default=None,
                        help="local: cells one after another here (default); ray: one Ray task per cell "
                             "(from the repository: pip install -c constraints.txt -e '.[ray]')")
    parser.add_argument("--address", default=None,
                        help="with --executor ray: the cluster (auto, HOST:PORT); default: a Ray instance "
                             "on this machine")
    parser.set_defaults(func=_run)


def _run(ns: argparse.Namespace) -> int:
    from nrg.sweep.config import parse_config
    from nrg.sweep.run import run_sweep
    from nrg.sweep.runfolder.files import check_run_dir

    config = parse_config(Path(ns.config))    # a path, never YAML text: `conf.txt` is a file
    if ns.allow_hardware_settings:
        config = replace(config, allow_hardware_settings=True)
    check_run_dir("--out", ns.out)
    frame = run_sweep(config, ns.out, progress=not ns.no_progress,
                      isolate=False if ns.inline else None, retry_failed=ns.retry_failed,
                      executor=ns.executor, ray_address=ns.address)
    print(summary(ns.out, frame))
    counts = frame.drop_duplicates("cell_id")["status"].value_counts().to_dict() if len(frame) else {}
    return 0 if counts.get("failed", 0) == 0 else 1


def summary(out: str, frame: Any) -> str:
    """What the sweep left in ``out``: this config's cells, then what else the folder holds."""
    if frame.empty:
        text = f"{out}: no rows for this config"
    else:
        cells = frame.drop_duplicates("cell_id")
        counts = cells["status"].value_counts().to_dict()
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        text = f"{out}: {_n(len(cells), 'cell')} ({statuses}), {_n(len(frame), 'row')}"
    other = frame.attrs.get("other_cells", 0)
    if other:
        text += f"; the folder also holds {_n(other, 'cell')} of other configs"
    busy = frame.attrs.get("busy_cells", {})
    if busy:
        text += (f"\n{_n(len(busy), 'cell')} skipped: being measured by another sweep "
                 f"({next(iter(busy.values()))}); rerun to include them")
    damaged = frame.attrs.get("damaged_files", [])
    if damaged:
        text += f"\n{_n(len(damaged), 'damaged cell file')} moved to cells/corrupt/ and measured again"
    return text


def _n(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")
