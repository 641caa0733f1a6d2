"""A sweep's generation cells measured in blocks: workers kept loaded where memory allows.

The run loop of :mod:`nrg.sweep.run` hands the cells of a ``generation``
sweep here: :mod:`nrg.sweep.blocks` decides the order (one repeat of every
unfinished cell per block, shuffled per block) and this module keeps a worker
per cell -- a child process (``isolate: true``) or an in-process object --
with its model loaded between blocks. When the next cell's model would not
fit beside the loaded ones, the least recently used worker is closed and its
model reloaded later (loading never falls inside a window). Each finished
cell is written to the store at once, so a killed sweep keeps every finished
cell; the repeats of unfinished cells are measured again on the next run.
"""
from __future__ import annotations

import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nrg.sweep.blocks import CellRun, Worker, run_blocks
from nrg.sweep.config import Cell, SweepConfig
from nrg.sweep.context import SweepContext, failed_frame
from nrg.sweep.store import RunStore
from nrg.sweep.worker import LocalWorker, ProcessWorker

if TYPE_CHECKING:
    import pandas as pd

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

    def get(self, cell: Cell) -> Worker:
        """The cell's worker, prepared (loaded and warmed up) if it was not live."""
        worker = self.live.get(cell.cell_id)
        if worker is not None:
            self.live.move_to_end(cell.cell_id)
            return worker
        self._make_room()
        worker = self._new(cell)
        self.live[cell.cell_id] = worker
        try:
            worker.prepare()
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
            return LocalWorker(cell, self.context, self.monitor_options)
        log = self.run.logs_dir / f"{cell.cell_id}.log"
        return ProcessWorker(cell, self.context, log, self.cfg.cell_timeout_s, dvfs=self.dvfs,
                             offline=not self.cfg.allow_download)

    def _learn(self, worker: Worker) -> None:
        """Remember the largest model footprint seen, to plan room for the next one."""
        used = 0.0
        if isinstance(worker, ProcessWorker):
            used = float(worker.footprint.get("used_bytes", 0.0))
        elif isinstance(worker, LocalWorker) and worker.prepared is not None:
            loaded = worker.prepared.loaded
            used = float(loaded.n_params * loaded.spec.dtype_bytes)
        self.footprint_bytes = max(self.footprint_bytes, used)

    def _make_room(self) -> None:
        while self.live and not self._fits():
            self.release(next(iter(self.live)))

    def _fits(self) -> bool:
        """Room for one more model of the largest footprint seen (device memory on CUDA)."""
        free, total = _free_memory(self.cfg.settings.device, self.live)
        return free - HEADROOM * self.footprint_bytes >= RESERVE_FRACTION * total


def changes_device(cell: Cell) -> bool:
    """Whether the cell sets an axis whose setting is held for its life (None = leave as is).

    Such cells are never interleaved (:func:`nrg.sweep.run._interleaved`).
    """
    from nrg import axes

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
                        claimable: Callable[[Cell, ExitStack], bool],
                        monitor_options: Mapping[str, Any] | None = None,
                        dvfs: Mapping[str, Any] | None = None, progress: bool = True, skipped: int = 0,
                        on_repeat: Callable[[str], None] | None = None) -> None:
    """Measure ``cells`` in blocks (``cfg.order``) and write each one when it is done."""
    from nrg.progress import bar

    with ExitStack() as claims:
        runs = {c.cell_id: CellRun(c) for c in cells}
        pool = WorkerPool(cfg, context, run, monitor_options, dvfs)
        by_id = {c.cell_id: c for c in cells}
        progress_bar = bar(range(len(runs)), desc=cfg.name, unit="cell", enabled=progress,
                           done_before=skipped)

        def done(cell_id: str, frame: pd.DataFrame) -> None:
            run.write_cell(cell_id, frame)
            pool.release(cell_id)
            progress_bar.update(1)

        def failed(cell_id: str, exc: BaseException) -> pd.DataFrame:
            pool.release(cell_id, now=True)
            status = "unsupported" if isinstance(exc, NotImplementedError) else "failed"
            if type(exc).__module__ == "nrg.sweep.worker":   # the child's words: its error, or how it ended
                return failed_frame(by_id[cell_id], context, str(exc), status)
            tail = traceback.format_exc(limit=-3)
            return failed_frame(by_id[cell_id], context, f"{type(exc).__name__}: {exc}\n{tail}", status)

        def claim(cell_id: str) -> bool:   # held until the sweep ends; another sweep's cell is left
            ours = claimable(by_id[cell_id], claims)
            if not ours:
                progress_bar.update(1)
            return ours

        interrupted = True
        try:
            run_blocks(runs, lambda cell_id: pool.get(by_id[cell_id]), cfg.order, cfg.settings.seed,
                       on_repeat=on_repeat, on_done=done, on_failure=failed, claim=claim)
            interrupted = False
        finally:
            pool.close_all(now=interrupted)
            progress_bar.close()
