"""One cell, failure-proof: its rows or one failed row; ``python -m nrg.sweep.cell``.

A cell never raises for a failure of the machine or the model: the error
becomes the cell's ``status``/``error`` row so a sweep goes on. Run as
``python -m nrg.sweep.cell SPEC.json`` it measures the cell described by a JSON spec
(see :func:`nrg.sweep.run.cell_spec`) and writes its Parquet file atomically --
the same program whether the cell runs in a child process here or on another
machine.

"""
from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.sweep.config import Cell
from nrg.sweep.context import SweepContext, failed_frame

if TYPE_CHECKING:
    import pandas as pd


def _status_of(exc: BaseException) -> str:
    return "unsupported" if isinstance(exc, NotImplementedError) else "failed"


def run_cell(cell: Cell, context: SweepContext,
             monitor_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """All rows of ``cell``; a failure gives one row with ``status``/``error`` instead."""
    try:
        from nrg.sweep.generation import measure_cell

        return measure_cell(cell, context, monitor_options)
    except Exception as exc:  # noqa: BLE001 - any failure of the cell is data
        tail = traceback.format_exc(limit=-3)
        return failed_frame(cell, context, f"{type(exc).__name__}: {exc}\n{tail}", _status_of(exc))


# ------------------------------------------------------------------ process entry


def main(argv: list[str] | None = None) -> int:
    """``python -m nrg.sweep.cell SPEC.json``: measure one cell and write its file."""
    import argparse

    from nrg.sweep.store import RunStore

    parser = argparse.ArgumentParser(prog="python -m nrg.sweep.cell", description=main.__doc__)
    parser.add_argument("spec", help="JSON file with cell, context and run_dir")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="exit when this process dies (no orphans after kill -9 of a sweep)")
    ns = parser.parse_args(argv)
    if ns.parent_pid:
        _watch_parent(ns.parent_pid)
    spec = json.loads(Path(ns.spec).read_text())
    cell = Cell.from_dict(spec["cell"])
    context = SweepContext.from_dict(spec["context"])
    if spec.get("node_context"):  # a Ray task: provenance, idle power, bandwidth of this node
        from nrg.sweep.executors import node_context

        context = node_context(cell, context)
    frame = run_cell(cell, context)
    RunStore.at(spec["run_dir"]).write_cell(cell.cell_id, frame)
    return 0


def _watch_parent(parent_pid: int) -> None:
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, name="nrg-parent-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
