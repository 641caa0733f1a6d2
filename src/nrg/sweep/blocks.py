"""Run order as an experimental design: repeats of different cells interleaved in blocks.

Why: when each cell runs all its repeats before the next cell starts, any drift
in the machine's background load (another process, a thermal state, a noisy
neighbour on a shared host) lines up with whatever factor changes from cell to
cell, and an ANOVA then attributes the drift to a model, a length or a clock.
Here a *block* is one pass over every cell that is still repeating, in an
order drawn from a seeded RNG; a drift is then spread over all cells of a
block, and the analysis can take the block as a factor (a randomized complete
block design). Rows carry ``block`` and ``run_order`` (position in the whole
sweep) so the order can be checked after the fact.

The adaptive repeat rule (:mod:`nrg.sweep.repeats`) is applied after every
block: a cell whose confidence interval is narrow enough (and that has its
minimum repeats) leaves the later blocks. ``order: sequential`` keeps the old
order (all repeats of a cell, then the next cell) for comparisons such as
``benchmarks/bench_order.py``.

The scheduler only decides *when* each repeat runs; a :class:`Worker` does the
measuring (in this process, or in a child process that keeps the cell's model
loaded between blocks: see :mod:`nrg.sweep.worker`).
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from nrg.sweep.config import Cell
from nrg.sweep.repeats import ci_rel_halfwidth, should_stop

if TYPE_CHECKING:
    import pandas as pd

class Worker(Protocol):
    """Measures one cell on request; loading and warm-up never fall inside a window."""

    def prepare(self) -> None:
        """Load the model, apply the cell's transforms and warm up."""

    def repeat(self, block: int, run_order: int | None) -> tuple[list[dict[str, Any]], float | None]:
        """Measure one repeat; its rows and the sample the adaptive rule watches (None: not counted).

        ``run_order`` is None in ``sequential`` order: rows without it are not
        taken as blocks by the analysis (:mod:`nrg.stats.blocking`).
        """

    def finish(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Columns common to the cell's rows, and extra rows (quality) measured once at the end."""

    def close(self) -> None:
        """Release the model (and the process holding it)."""


@dataclass
class CellRun:
    """What a sweep has measured of one cell so far."""

    cell: Cell
    rows: list[dict[str, Any]] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    attempts: int = 0
    failed: pd.DataFrame | None = None
    skipped: bool = False   # another sweep holds (or finished) the cell: nothing to measure here

    @property
    def stopped(self) -> bool:
        """True once the repeat policy is met, a failure ended the cell, or it was left to another sweep."""
        if self.failed is not None or self.skipped:
            return True
        policy = self.cell.settings.repeats
        # a repeat whose every try was flagged gives no sample: cap attempts so a cell cannot loop
        return should_stop(self.samples, policy) or self.attempts >= policy.max_n


def block_order(cell_ids: Sequence[str], seed: int, block: int) -> list[str]:
    """The cells of one block in a seeded random order (the same on every machine)."""
    order = list(cell_ids)
    random.Random(f"nrg-block:{seed}:{block}").shuffle(order)
    return order


def schedule(runs: Mapping[str, CellRun], order: str, seed: int, first_block: int = 0
             ) -> Iterable[tuple[int, str]]:
    """``(block, cell_id)`` pairs in run order; reads each run's state lazily, after every repeat.

    ``blocked``: block after block over the cells not yet stopped, shuffled per
    block. ``sequential``: every repeat of a cell, then the next cell (the
    block is then the repeat index).
    """
    if order == "sequential":
        for cell_id, run in runs.items():
            block = first_block
            while not run.stopped:
                yield block, cell_id
                block += 1
        return
    block = first_block
    while True:
        active = [cid for cid, run in runs.items() if not run.stopped]
        if not active:
            return
        for cell_id in block_order(active, seed, block):
            if not runs[cell_id].stopped:
                yield block, cell_id
        block += 1


def record_repeat(run: CellRun, rows: list[dict[str, Any]], sample: float | None) -> None:
    """Add one repeat's rows; a finite sample counts towards the adaptive rule."""
    run.attempts += 1
    run.rows.extend(rows)
    if sample is not None and math.isfinite(sample):
        run.samples.append(float(sample))


def cell_frame(run: CellRun, common: Mapping[str, Any], extra_rows: Sequence[Mapping[str, Any]]
               ) -> pd.DataFrame:
    """The cell's rows with its common columns, repeat count and reached CI half-width."""
    import pandas as pd

    precision = {"repeats_n": len(run.samples), "ci_rel_halfwidth": ci_rel_halfwidth(run.samples)}
    rows = [{**dict(common), **precision, **row} for row in [*run.rows, *extra_rows]]
    return pd.DataFrame(rows)


def run_blocks(runs: Mapping[str, CellRun], workers: Callable[[str], Worker], order: str, seed: int,
               on_repeat: Callable[[str], None] | None = None,
               on_done: Callable[[str, pd.DataFrame], None] | None = None,
               on_failure: Callable[[str, BaseException], pd.DataFrame] | None = None,
               claim: Callable[[str], bool] | None = None) -> None:
    """Measure every run's repeats in ``order``; a stopped cell is finished and handed to ``on_done``.

    ``workers(cell_id)`` returns a prepared worker (the caller decides whether
    it keeps models loaded); ``on_failure`` turns a worker's exception into the
    cell's failed frame (without it the exception propagates). ``claim(cell_id)``,
    asked before a cell's first repeat, says whether this sweep may measure it:
    claiming lazily lets two sweeps on one folder share the cells between them.
    """
    run_order = sum(r.attempts for r in runs.values())
    for block, cell_id in schedule(runs, order, seed):
        run = runs[cell_id]
        if run.attempts == 0 and claim is not None and not claim(cell_id):
            run.skipped = True
            continue
        try:
            worker = workers(cell_id)
            rows, sample = worker.repeat(block, run_order if order == "blocked" else None)
            run_order += 1
            record_repeat(run, rows, sample)
            if on_repeat is not None:
                on_repeat(cell_id)
            if not run.stopped:
                continue
            common, extra = worker.finish()
            frame = cell_frame(run, common, extra)
        except Exception as exc:
            if on_failure is None:
                raise
            run.failed = on_failure(cell_id, exc)
            frame = run.failed
        if on_done is not None:
            on_done(cell_id, frame)
