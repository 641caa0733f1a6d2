"""Run a sweep: check everything, then measure each unfinished cell, in isolation.

Order of work, and why:

1. :func:`nrg.sweep.check.check` -- meters, axis values and the workload's own
   check (models, dtypes, devices, lengths, memory, datasets), the output folder -- raises
   :class:`~nrg.errors.ParameterError` before anything is written (not even
   the run directory).
2. GPU/CPU settings that a killed run left changed are restored from the
   DVFS marker (:func:`nrg.dvfs.recovery.recover_leftovers`), whatever this
   sweep's axes: no cell is measured at a leftover clock.
3. The run directory, its manifest, and what the sweep measures once: hardware
   provenance, the idle baseline (``idle_s``; 0 skips it) and, for the CPU
   roofline, the memory bandwidth.
4. Each cell whose Parquet file is missing runs -- by default in its own
   isolated process (:func:`nrg.sweep.schedule.cell.command`), so a crash, a hang past
   ``cell_timeout_s`` or the kernel's OOM killer becomes that cell's
   ``status``/``error`` row and the sweep goes on. ``isolate: false`` runs
   cells in this process (the benchmark, fast tests).

Stopping: a cell past its timeout, and the running cell when the sweep gets
Ctrl-C, SIGTERM or SIGHUP, receives SIGTERM and ``TERM_GRACE_S`` seconds to
restore its settings, then SIGKILL, then the marker is replayed here
(:mod:`nrg.sweep.schedule.signals`); an interrupted sweep raises
:class:`~nrg.sweep.schedule.signals.SweepInterrupted` saying how many cells are done.
A rerun skips finished cells (``retry_failed=True`` reruns failed ones) and
continues unfinished ones from their kept repeats (:mod:`nrg.sweep.runfolder.checkpoints`):
``kill -9`` at any moment loses at most the repeat in progress (the cell in
progress, for cells run whole) and never duplicates rows (see :mod:`nrg.sweep.runfolder.store`).
"""
from __future__ import annotations

import signal
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError
from nrg.sweep.config import Cell, SweepConfig, check_timeout_isolated, parse_config
from nrg.sweep.runfolder import checkpoints
from nrg.sweep.runfolder.files import check_run_dir
from nrg.sweep.runfolder.store import RunStore
from nrg.sweep.schedule import executors, signals
from nrg.sweep.schedule.cell import dvfs_spec, run_cell, run_isolated
from nrg.sweep.schedule.context import SweepContext
from nrg.sweep.schedule.interleave import changes_device, measure_interleaved
from nrg.sweep.schedule.node import BANDWIDTH_MB, BANDWIDTH_REPEATS, measure_idle
from nrg.sweep.schedule.signals import SweepInterrupted

if TYPE_CHECKING:
    import pandas as pd

    from nrg.progress import SummaryBar
    from nrg.sweep.runfolder.locks import CellLock



def run_sweep(config: SweepConfig | Mapping[str, Any] | str | Path, out_dir: str | Path,
              progress: bool = True, isolate: bool | None = None,
              retry_failed: bool = False,
              monitor_options: Mapping[str, Any] | None = None,
              gate: Callable[[Cell], float | None] | None = None,
              executor: str | None = None, ray_address: str | None = None,
              on_repeat: Callable[[str], None] | None = None,
              checked_cells: Sequence[Cell] | None = None) -> pd.DataFrame:
    """Measure every cell of ``config`` into ``out_dir`` and return the rows of its cells.

    The folder may hold cells of other configs (kept for cheap reruns) and two
    sweeps may share it: each cell is claimed first, and a cell another live
    sweep is measuring is skipped (``attrs["busy_cells"]``, see :func:`_current_rows`).

    ``isolate``, ``executor`` and ``ray_address`` override the config's keys when given.
    ``monitor_options`` (in-process runs only) go to ``EnergyMonitor.auto``,
    e.g. ``sysfs_root`` or ``nvml_module``: how tests run the sweep on fake hardware.
    ``gate(cell)``, called before each unfinished cell, returns the seconds the
    cell may take (an isolated cell is stopped after that, as with
    ``cell_timeout_s``) or None to leave the cell for a later run.
    ``on_repeat(cell_id)`` is called after each measured repeat of a sweep run by the block
    scheduler (see :func:`_interleaved`).
    ``checked_cells``: the cells of ``config`` as :func:`nrg.sweep.check.check` returned them
    to the caller, who checked the config against this machine already (a chapter's
    ``Params``); they are not checked again.

    With ``order: blocked`` (the default), cells on the local executor are
    interleaved (:mod:`nrg.sweep.schedule.interleave`: one repeat of every cell per
    block, in a seeded random order); otherwise (``order: sequential``, a
    workload whose cells run whole such as serving, the Ray executor, a sweep
    with a ``gate``) each cell runs whole, one after another, in the grid's order.
    Raises :class:`ParameterError` before any work, and
    :class:`~nrg.sweep.schedule.signals.SweepInterrupted` on Ctrl-C, SIGTERM or SIGHUP.
    """
    from nrg.sweep import check as sweep_check

    cfg = parse_config(config)
    if isolate is not None and isolate != cfg.isolate:
        from dataclasses import replace

        check_timeout_isolated(cfg.cell_timeout_s, isolate, "isolate=False (--inline)")
        cfg = replace(cfg, isolate=isolate)
    if monitor_options and cfg.isolate:
        raise ParameterError("monitor_options is only valid with isolate=False "
                             "(objects such as nvml_module cannot be sent to a cell process)")
    check_run_dir("out_dir", out_dir)
    cfg = executors.with_executor(cfg, executor, ray_address)
    cells = list(checked_cells) if checked_cells is not None else sweep_check.check(cfg)
    if cfg.executor == "ray":  # connect; every cell must fit a node -- before any file is written
        executors.check_cluster(cfg, cells)
    dvfs = _dvfs_for_cells(cfg, cells)
    signals.recover_settings()  # before anything is measured, whatever this sweep's axes
    run = RunStore.at(out_dir)
    run.create()
    run.clean_temporary()
    damaged = _set_aside_damaged(run)
    done = run.finished()
    run.drop_finished_repeats(done)   # kept beside a cell written just before a kill
    run.drop_stale_claims()           # of sweeps killed before they released them
    todo = [c for c in cells
            if c.cell_id not in done or (retry_failed and done[c.cell_id] != "ok")]
    busy: dict[str, str] = {}
    with signals.interruptible():
        try:
            context = _sweep_context(cfg, run, todo if cfg.executor == "local" else [], monitor_options)
            if cfg.executor == "ray":  # each cell measures idle power and bandwidth on its own node
                executors.run_cells_ray(todo, context, run, cfg.cell_timeout_s, cfg.ray_address, progress,
                                        cfg.name, skipped=len(cells) - len(todo), offline=not cfg.allow_download,
                                        claim=_claims_whole_sweep(_claimer(run, done, busy)))
                return _current_rows(run, cells, busy, damaged)
            if _interleaved(cfg, todo, gate):
                last = run.last_run_order(c.cell_id for c in cells)
                measure_interleaved(todo, cfg, context, run, _claimer(run, done, busy), monitor_options, dvfs,
                                    progress, skipped=len(cells) - len(todo), on_repeat=on_repeat,
                                    run_order=0 if last is None else last + 1)
            else:
                for c in _progress(todo, progress, cfg.name, skipped=len(cells) - len(todo)):
                    _claim_and_run(c, cfg, context, run, done, busy, monitor_options, gate, dvfs)
        except KeyboardInterrupt as exc:
            finished = set(run.finished())
            signum = exc.signum if isinstance(exc, SweepInterrupted) else signal.SIGINT
            kept = checkpoints.kept_count(run.run_dir, (c.cell_id for c in cells if c.cell_id not in finished))
            raise SweepInterrupted(signum, sum(c.cell_id in finished for c in cells),
                                   len(cells), repeats_kept=kept) from exc
    return _current_rows(run, cells, busy, damaged)


def _interleaved(cfg: SweepConfig, cells: list[Cell], gate: Callable[[Cell], float | None] | None) -> bool:
    """Whether the block scheduler runs the sweep.

    It does for cells of a workload that interleaves (:func:`nrg.workloads.registry.interleaves`;
    not serving, whose cells each hold an engine) on this machine without a time gate, with
    ``order: blocked`` or in process (whose ``sequential`` order it also runs,
    calling ``on_repeat``); an isolated ``sequential`` sweep runs one one-shot
    process per cell. A sweep whose cells change a device setting (clock,
    power limit, CPU cap) runs whole cells, one after another: a setting is
    held for a cell's life and acts on the whole device, so two cells holding
    settings must never be measured side by side.
    """
    from nrg.workloads import registry

    return (registry.interleaves(cfg.settings.workload) and cfg.executor == "local" and gate is None
            and (cfg.order == "blocked" or not cfg.isolate) and not any(changes_device(c) for c in cells))


def _claimer(run: RunStore, done: Mapping[str, str], busy: dict[str, str]
             ) -> Callable[[Cell, ExitStack], CellLock | None]:
    """Claim a cell for an interleaved sweep, unless another sweep holds it or finished it.

    The claim is entered on the sweep's stack (released at its end at the
    latest) and returned, so the sweep can release it as soon as the cell is
    written; None when the cell is not this sweep's to measure.
    """

    def claim(c: Cell, claims: ExitStack) -> CellLock | None:
        held = claims.enter_context(run.claim(c.cell_id))
        if not held.ours:  # another sweep on this folder is measuring it now
            busy[c.cell_id] = held.describe()
            return None
        now = run.cell_status(c.cell_id)
        if now == "ok" or (now is not None and c.cell_id not in done):
            held.release()   # another sweep measured it since this one looked
            return None
        return held

    return claim


def _claims_whole_sweep(claimer: Callable[[Cell, ExitStack], CellLock | None]
                        ) -> Callable[[Cell, ExitStack], bool]:
    """The claimer for the Ray executor, which keeps its claims until the sweep ends."""
    return lambda c, stack: claimer(c, stack) is not None


def _claim_and_run(c: Cell, cfg: SweepConfig, context: SweepContext, run: RunStore, done: Mapping[str, str],
                   busy: dict[str, str], monitor_options: Mapping[str, Any] | None,
                   gate: Callable[[Cell], float | None] | None, dvfs: Mapping[str, Any] | None) -> None:
    """Measure one cell unless another sweep holds it or measured it since this one looked."""
    with run.claim(c.cell_id) as claim:
        if not claim.ours:  # another sweep on this folder is measuring it now
            busy[c.cell_id] = claim.describe()
            return
        now = run.cell_status(c.cell_id)
        if now == "ok" or (now is not None and c.cell_id not in done):
            return  # another sweep measured it since this one looked
        timeout_s = cfg.cell_timeout_s
        if gate is not None:
            allowed_s = gate(c)
            if allowed_s is None:
                return  # left for a later run (e.g. it would not fit a time budget)
            timeout_s = allowed_s if timeout_s is None else min(timeout_s, allowed_s)
        if cfg.isolate:
            run_isolated(c, context, run, timeout_s, dvfs=dvfs, offline=not cfg.allow_download)
        else:
            run.write_cell(c.cell_id, run_cell(c, context, monitor_options))


def _set_aside_damaged(run: RunStore) -> list[str]:
    """Move damaged cell files to ``cells/corrupt/`` (named in a warning); their cells run again."""
    import warnings

    moved = run.quarantine(run.scan().damaged)
    for item in moved:
        warnings.warn(f"nrg: damaged cell file {item.path.name} ({item.reason}) moved to "
                      f"{run.corrupt_dir}; the cell is measured again", stacklevel=3)
    return [item.path.name for item in moved]


def _current_rows(run: RunStore, cells: list[Cell], busy: Mapping[str, str],
                  damaged: list[str]) -> pd.DataFrame:
    """The rows of this config's cells; ``attrs`` tells what else the folder holds.

    ``attrs["other_cells"]``: cells of other configs in the folder;
    ``attrs["busy_cells"]``: cell id -> the sweep measuring it now (skipped here);
    ``attrs["damaged_files"]``: cell files moved aside by this run.
    """
    from nrg.sweep.runfolder import store

    ids = {c.cell_id for c in cells}
    frame = store.load(run.run_dir, cell_ids=ids)
    if frame.empty:   # every cell busy elsewhere: still the result's columns, for code that reads them
        frame = store.load(run.run_dir, cell_ids=ids, all_columns=True)
    frame.attrs.update({"other_cells": len(set(run.finished()) - ids), "busy_cells": dict(busy),
                        "damaged_files": list(damaged)})
    return frame


GPU_AXES = ("gpu_clock_mhz", "mem_clock_mhz", "power_limit_w")


def _dvfs_for_cells(cfg: SweepConfig, cells: list[Cell]) -> dict[str, Any] | None:
    """The DVFS settings cell processes inherit; refuse GPU axes a cell process could not reach."""
    if not cfg.isolate:
        return None
    spec = dvfs_spec()
    changes_gpu = any(v is not None for c in cells for k, v in c.axes if k in GPU_AXES)
    if changes_gpu and not spec["nvml_portable"]:
        raise ParameterError(
            "isolate=True is not valid with the NVML module given to nrg.dvfs.configure: it cannot "
            "be sent to a cell process (give it a cell_spec() method) -- use isolate=False")
    return spec


def _sweep_context(cfg: SweepConfig, run: RunStore, cells: list[Cell],
                   monitor_options: Mapping[str, Any] | None) -> SweepContext:
    """Provenance, idle baseline and bandwidth: measured once, applied to every cell."""
    from nrg.meters.hardware import memory_bandwidth_bytes_per_s, provenance

    prov = provenance()
    run_id = run.open_session(cfg.name, cfg.chapter, cfg.to_dict(), prov)
    idle = measure_idle(cells[0], monitor_options) if cfg.settings.idle_s > 0 and cells else {}
    bandwidth = None
    if cfg.settings.roofline and cfg.settings.device == "cpu" and cells:
        bandwidth = memory_bandwidth_bytes_per_s(size_mb=BANDWIDTH_MB, repeats=BANDWIDTH_REPEATS)
    return SweepContext(run_id=run_id, chapter=cfg.chapter, idle_power_w=idle,
                        mem_bandwidth_bytes_per_s=bandwidth, provenance=prov,
                        run_dir=str(run.run_dir.resolve()))


def _progress(cells: list[Cell], enabled: bool, name: str, skipped: int) -> SummaryBar:
    from nrg.progress import bar  # text, not a widget; one summary line stays in a page

    return bar(cells, desc=name, unit="cell", enabled=enabled, done_before=skipped)
