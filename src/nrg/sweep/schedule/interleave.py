"""A sweep's cells measured in blocks: workers kept loaded where memory allows.

The run loop of :mod:`nrg.sweep.run` hands the cells of a sweep here (every
workload whose cells may run side by side: generation, fine-tuning):
:mod:`nrg.sweep.schedule.blocks` decides the order (one repeat of every unfinished
cell per block, shuffled per block) and this module keeps a worker per cell
-- a child process (``isolate: true``) or the workload's own worker in process --
with its model loaded between blocks. When the next cell's model would not
fit beside the loaded ones, the least recently used worker is closed and its
model reloaded later (loading never falls inside a window). Each repeat is
kept as it finishes (:mod:`nrg.sweep.runfolder.checkpoints`) and each finished cell is
written to the store at once, so a killed sweep keeps every finished repeat;
the next run continues the interrupted block from them.
"""
from __future__ import annotations

import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nrg.sweep.config import Cell, SweepConfig
from nrg.sweep.runfolder import checkpoints
from nrg.sweep.runfolder.store import RunStore
from nrg.sweep.schedule import signals
from nrg.sweep.schedule.blocks import CellRun, Hooks, run_blocks
from nrg.sweep.schedule.context import SweepContext, failed_frame
from nrg.sweep.schedule.worker import ProcessWorker
from nrg.workloads import registry
from nrg.workloads.protocol import Worker

if TYPE_CHECKING:
    import pandas as pd

    from nrg.progress import SummaryBar
    from nrg.sweep.runfolder.locks import CellLock

HEADROOM = 1.5          # a model's footprint times this must fit in free memory beside the others
RESERVE_FRACTION = 0.1  # of total memory, never planned for models


@dataclass
class WorkerPool:
    """One prepared worker per cell, least recently used first; closes workers to make room."""

    cfg: SweepConfig
    context: SweepContext
    run: RunStore
    monitor_options: Mapping[str, Any] | None = None
    dvfs: Mapping[str, Any] | None = None
    live: OrderedDict[str, Worker] = field(default_factory=OrderedDict)
    footprint_bytes: float = 0.0

    def get(self, cell: Cell, progress: CellRun | None = None) -> Worker:
        """The cell's worker, prepared (loaded and warmed up) if it was not live.

        A new worker continues ``progress`` (the repeats kept or measured before
        it was closed to make room): its rows never reuse a ``repeat`` index.
        """
        worker = self.live.get(cell.cell_id)
        if worker is not None:
            self.live.move_to_end(cell.cell_id)
            return worker
        self._make_room()
        worker = self._new(cell)
        self.live[cell.cell_id] = worker
        try:
            if progress is None:
                worker.prepare()
            else:
                worker.prepare(progress.next_repeat, progress.retries, progress.attempts)
        except BaseException:
            self.release(cell.cell_id, now=True)
            raise
        self._learn(worker)
        return worker

    def release(self, cell_id: str, now: bool = False) -> None:
        """Close the cell's worker (its model is freed; the child restores what it set)."""
        worker = self.live.pop(cell_id, None)
        if isinstance(worker, ProcessWorker):
            worker.close(now=now)
        elif worker is not None:
            worker.close()

    def close_all(self, now: bool = False) -> None:
        """Close every worker; ``now`` for an interrupted sweep (SIGTERM rather than end of input)."""
        for cell_id in list(self.live):
            self.release(cell_id, now=now)

    def _new(self, cell: Cell) -> Worker:
        if not self.cfg.isolate:
            return registry.worker(cell, self.context, self.monitor_options)
        log = self.run.logs_dir / f"{cell.cell_id}.log"
        return ProcessWorker(cell, self.context, log, self.cfg.cell_timeout_s, dvfs=self.dvfs,
                             offline=not self.cfg.allow_download)

    def _learn(self, worker: Worker) -> None:
        """Remember the largest model footprint seen, to plan room for the next one."""
        used = float(worker.footprint.get("used_bytes", 0.0))
        self.footprint_bytes = max(self.footprint_bytes, used)

    def _make_room(self) -> None:
        while self.live and not self._fits():
            self.release(next(iter(self.live)))

    def _fits(self) -> bool:
        """Room for one more model of the largest footprint seen (device memory on CUDA)."""
        free, total = _free_memory(self.cfg.settings.device, self.live)
        return free - HEADROOM * self.footprint_bytes >= RESERVE_FRACTION * total


@dataclass
class RepeatProgress:
    """The sweep's bar, counting repeats (kept ones included); cells done go in its summary line.

    Why repeats: in blocked order cells finish only in the last block, so a bar
    of cells sat at 0 % until the end. The total is each cell's most repeats
    (``repeats.max``); it shrinks when a cell stops early (adaptive rule,
    failure) or is left to another sweep, so the bar never passes 100 %.
    """

    bar: SummaryBar
    cells_total: int
    cells_before: int
    kept_before: int
    cells_done: int = 0

    @classmethod
    def start(cls, runs: Mapping[str, CellRun], name: str, enabled: bool, skipped: int) -> RepeatProgress:
        """A bar over the repeats ``runs`` may take; ``skipped`` cells were done in an earlier run."""
        from nrg.progress import bar

        total = sum(max(r.policy.max_n, r.attempts) for r in runs.values())
        kept = sum(r.attempts for r in runs.values())
        counter = cls(bar(None, desc=name, unit="repeat", enabled=enabled, total=total, initial=kept),
                      len(runs) + skipped, skipped, kept)
        counter._show()
        return counter

    def repeat_done(self) -> None:
        """One more repeat measured and kept."""
        self.bar.update(1)

    def cell_done(self, run: CellRun) -> None:
        """A cell was written: its repeats it will not take leave the total."""
        self.cells_done += 1
        self._shrink(run)

    def cell_left(self, run: CellRun) -> None:
        """Another sweep holds or finished the cell: its repeats leave the total."""
        self._shrink(run)

    def close(self) -> None:
        """Clear the bar; its summary line stays."""
        self.bar.close()

    def _shrink(self, run: CellRun) -> None:
        left = max(run.policy.max_n, run.attempts) - run.attempts
        if left and self.bar.total is not None:
            self.bar.total -= left
            self.bar.refresh()
        self._show()

    def _show(self) -> None:
        done = self.cells_before + self.cells_done
        self.bar.set_postfix_str(f"{done}/{self.cells_total} cells")
        before = [f"{self.cells_before} before" if self.cells_before else "",
                  f"{self.kept_before} repeats kept from an earlier run" if self.kept_before else ""]
        extra = "; ".join(x for x in before if x)
        self.bar.note = f"({done}/{self.cells_total} cells done" + (f"; {extra})" if extra else ")")


def changes_device(cell: Cell) -> bool:
    """Whether the cell sets an axis whose setting is held for its life (None = leave as is).

    Such cells are never interleaved (:func:`nrg.sweep.run._interleaved`).
    """
    from nrg.sweep import axes

    return any(value is not None and axes.get(name).environment is not None for name, value in cell.axes)


def _free_memory(device: str, live: Mapping[str, Worker]) -> tuple[float, float]:
    """Free and total bytes where the models live: the last CUDA report of a child, else RAM."""
    if device != "cpu":
        for worker in reversed(list(live.values())):
            if isinstance(worker, ProcessWorker) and "free_bytes" in worker.footprint:
                return worker.footprint["free_bytes"], worker.footprint["total_bytes"]
        return float("inf"), 0.0
    import psutil

    vm = psutil.virtual_memory()
    return float(vm.available), float(vm.total)


def measure_interleaved(cells: list[Cell], cfg: SweepConfig, context: SweepContext, run: RunStore,
                        claimable: Callable[[Cell, ExitStack], CellLock | None],
                        monitor_options: Mapping[str, Any] | None = None,
                        dvfs: Mapping[str, Any] | None = None, progress: bool = True, skipped: int = 0,
                        on_repeat: Callable[[str], None] | None = None, run_order: int = 0) -> None:
    """Measure ``cells`` in blocks (``cfg.order``), keeping each repeat and writing each finished cell.

    Repeats kept by an earlier sweep are read back when a cell is claimed
    (:mod:`nrg.sweep.runfolder.checkpoints`); ``run_order`` numbers the first repeat
    measured here. ``claimable(cell, stack)`` returns the cell's claim (entered
    on ``stack``) when this sweep may measure it, else None.
    """
    with ExitStack() as claims:
        runs = {c.cell_id: CellRun(c) for c in cells}
        for cell_id, cell_run in runs.items():   # a first look, for the schedule; read again on claiming
            cell_run.restore(run.kept_repeats(cell_id))
        pool = WorkerPool(cfg, context, run, monitor_options, dvfs)
        by_id = {c.cell_id: c for c in cells}
        counter = RepeatProgress.start(runs, cfg.name, progress, skipped)
        held: dict[str, CellLock] = {}

        def done(cell_id: str, frame: pd.DataFrame) -> None:
            run.write_cell(cell_id, frame)      # the truth from now on; then its kept repeats go
            run.drop_repeats(cell_id)
            claim_held = held.pop(cell_id, None)
            if claim_held is not None:
                claim_held.release()
            pool.release(cell_id)
            counter.cell_done(runs[cell_id])

        def failed(cell_id: str, exc: BaseException) -> pd.DataFrame:
            pool.release(cell_id, now=True)
            return _failed_frame(by_id[cell_id], context, exc)

        def claim(cell_id: str) -> bool:   # held until the cell is written; another sweep's cell is left
            ours = claimable(by_id[cell_id], claims)
            if ours is None:
                counter.cell_left(runs[cell_id])
                return False
            held[cell_id] = ours
            runs[cell_id].restore(run.kept_repeats(cell_id))   # what the last holder kept
            checkpoints.clean_temporary(run.run_dir, cell_id)
            return True

        def keep(cell_id: str, cell_run: CellRun) -> None:
            with signals.deferred():   # a Ctrl-C now waits until the repeat is kept
                run.keep_repeats(cell_run.state())
            counter.repeat_done()
            if on_repeat is not None:
                on_repeat(cell_id)

        hooks = Hooks(claim=claim, checkpoint=keep, on_done=done, on_failure=failed)
        interrupted = True
        try:
            run_blocks(runs, lambda cell_id: pool.get(by_id[cell_id], runs[cell_id]), cfg.order,
                       cfg.settings.seed, hooks, run_order=run_order)
            interrupted = False
        finally:
            pool.close_all(now=interrupted)
            counter.close()


def _failed_frame(cell: Cell, context: SweepContext, exc: BaseException) -> pd.DataFrame:
    """A worker's exception as the cell's failed row (its kept repeats are dropped with it)."""
    status = "unsupported" if isinstance(exc, NotImplementedError) else "failed"
    if type(exc).__module__ == "nrg.sweep.schedule.worker":   # the child's words: its error, or how it ended
        return failed_frame(cell, context, str(exc), status)
    tail = traceback.format_exc(limit=-3)
    return failed_frame(cell, context, f"{type(exc).__name__}: {exc}\n{tail}", status)
