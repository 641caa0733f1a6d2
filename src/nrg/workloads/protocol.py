"""The contract between the sweep runner and a workload: prepare, repeat, finish, close.

Why one protocol: the runner schedules repeats -- one at a time, in randomized
blocks across cells (:mod:`nrg.sweep.schedule.blocks`), in this process or in a child
process that keeps the cell loaded (:mod:`nrg.sweep.schedule.worker`) -- and must not
care whether a repeat generates text, fine-tunes a model or serves a trace.
Loading and warm-up belong to ``prepare`` and never fall inside a measured window.

A workload module names its worker class in :mod:`nrg.workloads.registry`;
the class is built as ``Worker(cell, context, monitor_options)`` and
prepared by the runner. The runner's child-process proxy
(:class:`nrg.sweep.schedule.worker.ProcessWorker`) implements the same protocol, so
the block scheduler cannot tell the two apart.
"""
from __future__ import annotations

from typing import Any, Protocol


class Worker(Protocol):
    """Measures one cell on request; loading and warm-up never fall inside a window.

    ``footprint`` (after ``prepare``): ``used_bytes`` the prepared cell holds,
    and where known ``free_bytes`` / ``total_bytes`` of its device, for the
    runner's keep-loaded decision.
    """

    footprint: dict[str, float]

    def prepare(self, next_repeat: int = 0, retries: int = 0, done: int = 0) -> None:
        """Load the model, apply the cell's transforms and warm up.

        ``next_repeat``, ``retries`` and ``done`` continue a cell that already
        has repeats (kept by an earlier sweep, or measured before the worker was
        closed to make room): row ``repeat`` indices never repeat, the
        interference cap holds, and ``done`` repeats are not measured again.
        """

    def repeat(self, block: int, run_order: int | None) -> tuple[list[dict[str, Any]], float | None]:
        """Measure one repeat; its rows and the sample the adaptive rule watches (None: not counted).

        ``run_order`` is None in ``sequential`` order: rows without it are not
        taken as blocks by the analysis (:mod:`nrg.stats.blocking`).
        """

    def finish(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Columns common to the cell's rows, and extra rows (quality) measured once at the end."""

    def close(self) -> None:
        """Release the model (and the process holding it); safe after a failed ``prepare``."""
