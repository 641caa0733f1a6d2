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

The scheduler only decides *when* each repeat runs; a
:class:`~nrg.workloads.protocol.Worker` does the measuring (in this process, or
in a child process that keeps the cell's model loaded between blocks: see
:mod:`nrg.sweep.schedule.worker`).

Nothing finished is lost: after every repeat the caller may keep the cell's
state (``checkpoint``: :mod:`nrg.sweep.runfolder.store` writes it atomically), and a
later sweep starts from it. Each block's order is a *filter* of one seeded
permutation of the cell ids (:func:`block_order`), and a cell joins block
``b`` only while it has at most ``b`` repeats, so a resumed sweep continues the
interrupted block with the cells that had not had their turn, in the same
order, and stops each cell by the same rule applied to the kept samples.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nrg.sweep.config import Cell
from nrg.sweep.repeats import RepeatPolicy, ci_rel_halfwidth
from nrg.workloads import registry
from nrg.workloads.protocol import Worker

if TYPE_CHECKING:
    import pandas as pd

@dataclass
class CellRun:
    """What a sweep has measured of one cell so far (``attempts``: repeats asked of a worker).

    ``policy`` is how many repeats the cell's workload wants (default: the
    sweep's ``repeats``; fine-tuning: its ``train_repeats``).
    """

    cell: Cell
    rows: list[dict[str, Any]] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)
    attempts: int = 0
    failed: pd.DataFrame | None = None
    skipped: bool = False   # another sweep holds (or finished) the cell: nothing to measure here
    claimed: bool = False   # this sweep may measure the cell (asked before its first repeat here)
    policy: RepeatPolicy = field(init=False)

    def __post_init__(self) -> None:
        self.policy = registry.repeat_policy(self.cell)

    @property
    def stopped(self) -> bool:
        """True once the repeat policy is met, a failure ended the cell, or it was left to another sweep."""
        if self.failed is not None or self.skipped:
            return True
        return self.policy.done(self.samples, self.attempts)   # the one rule, capped at max_n attempts

    @property
    def next_repeat(self) -> int:
        """The ``repeat`` index of the cell's next row (redone tries took indices too)."""
        indices = [int(row["repeat"]) for row in self.rows if row.get("repeat") is not None]
        return max(indices) + 1 if indices else 0

    @property
    def retries(self) -> int:
        """Tries redone because they were flagged for interference (they count against the cap)."""
        indices = {int(row["repeat"]) for row in self.rows if row.get("repeat") is not None}
        return max(0, len(indices) - self.attempts)

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: enough to rebuild the run with :meth:`restore`."""
        return {"cell_id": self.cell.cell_id, "attempts": self.attempts, "samples": list(self.samples),
                "rows": list(self.rows)}

    def restore(self, state: Mapping[str, Any] | None) -> None:
        """Take the repeats of a checkpoint (None: none kept); the stop rule then reads its samples."""
        if state is None:
            return
        self.rows = [dict(row) for row in state["rows"]]
        self.samples = [float(x) for x in state["samples"]]
        self.attempts = int(state["attempts"])


def block_order(cell_ids: Sequence[str], seed: int, block: int) -> list[str]:
    """The cells of one block in a seeded random order (the same on every machine).

    Each cell gets a seeded random key per block and the cells are sorted by
    it: the order of any subset is the full order with the others left out, so
    a resumed sweep that lacks the cells already done still visits the rest
    in the order the uninterrupted sweep would have.
    """
    def key(cell_id: str) -> tuple[float, str]:
        return random.Random(f"nrg-block:{seed}:{block}:{cell_id}").random(), cell_id

    return sorted(cell_ids, key=key)


def schedule(runs: Mapping[str, CellRun], order: str, seed: int) -> Iterable[tuple[int, str]]:
    """``(block, cell_id)`` pairs in run order; reads each run's state lazily, after every repeat.

    ``blocked``: block after block over the cells not yet stopped, shuffled per
    block; a cell takes part in block ``b`` while it has at most ``b`` repeats,
    so kept repeats put a resumed cell back in the block it was interrupted in.
    ``sequential``: every repeat of a cell, then the next cell (the block is
    then the repeat index).
    """
    if order == "sequential":
        for cell_id, run in runs.items():
            while not run.stopped:
                yield run.attempts, cell_id
        return
    active = [cid for cid, run in runs.items() if not run.stopped]
    block = min((runs[cid].attempts for cid in active), default=0)
    while active:
        due = [cid for cid in active if runs[cid].attempts <= block]
        for cell_id in block_order(due, seed, block):
            run = runs[cell_id]
            if not run.stopped and run.attempts <= block:
                yield block, cell_id
        block += 1
        active = [cid for cid, run in runs.items() if not run.stopped]


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
    frame = pd.DataFrame(rows)
    registry.precision(run.cell, frame)
    return frame


def run_whole(cell: Cell, worker: Worker) -> pd.DataFrame:
    """The whole cell at once: prepare, repeat until its policy is met, finish; the worker is closed.

    The cell's repeats run back to back (``block`` is the repeat's index,
    ``run_order`` None): the one-shot cell process, a Ray task, an in-process
    sequential cell. A failure raises (the caller writes the failure row).
    """
    run = CellRun(cell)
    try:
        worker.prepare()
        while not run.stopped:
            rows, sample = worker.repeat(run.attempts, None)
            record_repeat(run, rows, sample)
        common, extra = worker.finish()
    finally:
        worker.close()
    return cell_frame(run, common, extra)


@dataclass
class Hooks:
    """What the caller does around the scheduler's work (every hook optional).

    ``claim(cell_id)``, asked before a cell's first repeat in this sweep, says
    whether this sweep may measure it (claiming lazily lets two sweeps on one
    folder share the cells) and may restore the cell's kept repeats into its
    run. ``checkpoint(cell_id, run)`` keeps the run after every repeat;
    ``on_repeat(cell_id)`` follows it. ``on_done(cell_id, frame)`` receives a
    finished cell; ``on_failure`` turns a worker's exception into the cell's
    failed frame (without it the exception propagates).
    """

    claim: Callable[[str], bool] | None = None
    checkpoint: Callable[[str, CellRun], None] | None = None
    on_repeat: Callable[[str], None] | None = None
    on_done: Callable[[str, pd.DataFrame], None] | None = None
    on_failure: Callable[[str, BaseException], pd.DataFrame] | None = None


def run_blocks(runs: Mapping[str, CellRun], workers: Callable[[str], Worker], order: str, seed: int,
               hooks: Hooks | None = None, run_order: int | None = None) -> None:
    """Measure every run's repeats in ``order``; a stopped cell is finished and handed to ``on_done``.

    ``workers(cell_id)`` returns a prepared worker (the caller decides whether
    it keeps models loaded). ``run_order`` numbers the first repeat measured
    here (default: the repeats the runs already hold), so a resumed sweep
    continues the numbering. A run whose kept repeats already meet its policy
    (the sweep stopped before writing it) is only finished.
    """
    hooks = hooks or Hooks()
    next_order = sum(r.attempts for r in runs.values()) if run_order is None else run_order
    for cell_id, run in runs.items():
        if run.stopped and run.attempts and _claimed(run, cell_id, hooks) and run.stopped:
            _visit(run, cell_id, workers, hooks, None, None)
    for block, cell_id in schedule(runs, order, seed):
        run = runs[cell_id]
        if not _claimed(run, cell_id, hooks):
            continue   # left to another sweep
        if run.stopped:   # its kept repeats, read again on claiming, meet the policy
            _visit(run, cell_id, workers, hooks, None, None)
        elif run.attempts <= block:   # else its kept repeats put it in a later block
            before = run.attempts
            _visit(run, cell_id, workers, hooks, block, next_order if order == "blocked" else None)
            next_order += run.attempts - before


def _claimed(run: CellRun, cell_id: str, hooks: Hooks) -> bool:
    """Claim the cell once per sweep; a cell another sweep holds is marked skipped."""
    if not run.claimed:
        if hooks.claim is not None and not hooks.claim(cell_id):
            run.skipped = True
            return False
        run.claimed = True
    return not run.skipped


def _visit(run: CellRun, cell_id: str, workers: Callable[[str], Worker], hooks: Hooks,
           block: int | None, run_order: int | None) -> None:
    """One repeat of the cell (``block`` None: none, only finish); finish it once it is stopped."""
    try:
        worker = workers(cell_id)
        if block is not None:
            rows, sample = worker.repeat(block, run_order)
            record_repeat(run, rows, sample)
            if hooks.checkpoint is not None:
                hooks.checkpoint(cell_id, run)
            if hooks.on_repeat is not None:
                hooks.on_repeat(cell_id)
            if not run.stopped:
                return
        common, extra = worker.finish()
        frame = cell_frame(run, common, extra)
    except Exception as exc:
        if hooks.on_failure is None:
            raise
        run.failed = hooks.on_failure(cell_id, exc)
        frame = run.failed
    if hooks.on_done is not None:
        hooks.on_done(cell_id, frame)
