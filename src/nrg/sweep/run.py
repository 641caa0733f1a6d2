"""Run a sweep: check everything, then measure each unfinished cell, in isolation.

Order of work, and why:

1. :func:`nrg.sweep.check.check` -- config keys, models, dtypes, devices,
   lengths, datasets, axis values -- raises :class:`~nrg.errors.ParameterError`
   before anything is written (not even the run directory).
2. The run directory, its manifest, and what the sweep measures once: hardware
   provenance, the idle baseline (``idle_s``; 0 skips it) and, for the CPU
   roofline, the memory bandwidth.
3. Each cell whose Parquet file is missing runs -- by default in its own
   process (``python -m nrg.sweep.cell SPEC.json``), so a crash, a hang past
   ``cell_timeout_s`` or the kernel's OOM killer becomes that cell's
   ``status``/``error`` row and the sweep goes on. ``isolate: false`` runs
   cells in this process (the benchmark, fast tests).

A rerun skips finished cells (``retry_failed=True`` reruns failed ones);
``kill -9`` at any moment loses at most the cell in progress and never
duplicates rows (see :mod:`nrg.sweep.store`).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError
from nrg.sweep.cell import run_cell
from nrg.sweep.config import Cell, SweepConfig, parse_config
from nrg.sweep.context import SweepContext, failed_frame
from nrg.sweep.store import RunStore

if TYPE_CHECKING:
    import pandas as pd

BANDWIDTH_MB = 256
BANDWIDTH_REPEATS = 5
STDERR_TAIL_CHARS = 2000


def run_sweep(config: SweepConfig | Mapping[str, Any] | str | Path, out_dir: str | Path,
              progress: bool = True, isolate: bool | None = None,
              retry_failed: bool = False,
              monitor_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Measure every cell of ``config`` into ``out_dir`` and return all rows of the run.

    ``isolate`` overrides the config's ``isolate`` key when given.
    ``monitor_options`` (in-process runs only) go to ``EnergyMonitor.auto``,
    e.g. ``sysfs_root`` or ``nvml_module``: how tests run the sweep on fake hardware.
    """
    from nrg.sweep import check as sweep_check
    from nrg.sweep import store

    cfg = parse_config(config)
    if isolate is not None and isolate != cfg.isolate:
        from dataclasses import replace

        cfg = replace(cfg, isolate=isolate)
    if monitor_options and cfg.isolate:
        raise ParameterError("monitor_options is only valid with isolate=False "
                             "(objects such as nvml_module cannot be sent to a cell process)")
    cells = sweep_check.check(cfg)
    run = RunStore.at(out_dir)
    run.create()
    run.clean_temporary()
    done = run.finished()
    todo = [c for c in cells
            if c.cell_id not in done or (retry_failed and done[c.cell_id] != "ok")]
    context = _sweep_context(cfg, run, todo, monitor_options)
    for c in _progress(todo, progress, cfg.name, skipped=len(cells) - len(todo)):
        if cfg.isolate:
            run_isolated(c, context, run, cfg.cell_timeout_s)
        else:
            run.write_cell(c.cell_id, run_cell(c, context, monitor_options))
    return store.load(run.run_dir)


def _sweep_context(cfg: SweepConfig, run: RunStore, cells: list[Cell],
                   monitor_options: Mapping[str, Any] | None) -> SweepContext:
    """Provenance, idle baseline and bandwidth: measured once, applied to every cell."""
    from nrg.hardware import memory_bandwidth_bytes_per_s, provenance

    prov = provenance()
    run_id = run.open_session(cfg.name, cfg.chapter, cfg.to_dict(), prov)
    idle = measure_idle(cells[0], monitor_options) if cfg.settings.idle_s > 0 and cells else {}
    bandwidth = None
    if cfg.settings.roofline and cfg.settings.device == "cpu" and cells:
        bandwidth = memory_bandwidth_bytes_per_s(size_mb=BANDWIDTH_MB, repeats=BANDWIDTH_REPEATS)
    return SweepContext(run_id=run_id, chapter=cfg.chapter, idle_power_w=idle,
                        mem_bandwidth_bytes_per_s=bandwidth, provenance=prov)


def measure_idle(cell: Cell, monitor_options: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Idle power per domain with the sweep's meters and device, over ``idle_s`` seconds."""
    from nrg.sweep.generation import open_monitor

    with open_monitor(cell, monitor_options) as monitor:
        return {k: float(v) for k, v in monitor.measure_idle(cell.settings.idle_s).items()}


def _progress(cells: list[Cell], enabled: bool, name: str, skipped: int) -> Any:
    from nrg.progress import bar  # text, not a widget; one summary line stays in a page

    return bar(cells, desc=name, unit="cell", enabled=enabled, done_before=skipped)


def cell_spec(cell: Cell, context: SweepContext, run_dir: str | Path) -> dict[str, Any]:
    """The JSON a cell process receives: everything needed to measure and store one cell."""
    return {"cell": cell.to_dict(), "context": context.to_dict(), "run_dir": str(Path(run_dir).resolve())}


def run_isolated(cell: Cell, context: SweepContext, run: RunStore, timeout_s: float | None) -> None:
    """Measure ``cell`` in a child process; record a crash, kill or timeout as a failed cell."""
    spec_path = run.logs_dir / f"{cell.cell_id}.json"
    spec_path.write_text(json.dumps(cell_spec(cell, context, run.run_dir), default=str))
    log_path = run.logs_dir / f"{cell.cell_id}.log"
    cell_path = run.cell_path(cell.cell_id)
    before_ns = cell_path.stat().st_mtime_ns if cell_path.exists() else None
    cmd = [sys.executable, "-m", "nrg.sweep.cell", str(spec_path), "--parent-pid", str(os.getpid())]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
        except BaseException:  # KeyboardInterrupt: do not leave the child running
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    if cell_path.exists() and cell_path.stat().st_mtime_ns != before_ns:
        spec_path.unlink(missing_ok=True)  # the child wrote its rows (ok or failed)
        return
    tail = log_path.read_text(errors="replace")[-STDERR_TAIL_CHARS:]
    run.write_cell(cell.cell_id, failed_frame(cell, context, f"{_exit_reason(rc, timeout_s)}\n{tail}"))


def _exit_reason(rc: int | None, timeout_s: float | None) -> str:
    if rc is None:
        return f"cell process killed after cell_timeout_s={timeout_s}"
    if rc < 0:
        name = signal.Signals(-rc).name
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -rc == signal.SIGKILL else ""
        return f"cell process died from {name}{hint}"
    return f"cell process exited with status {rc} without writing its results"
