"""What a sweep measures once about the machine: idle power and memory bandwidth.

A local sweep measures them once on the driver's machine (:mod:`nrg.sweep.run`);
a Ray task measures them on the node its cell runs on (:func:`node_context`).
Kept apart from both so the cell process, the runner and the executor use one
definition without importing each other.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from nrg.sweep.config import Cell
from nrg.sweep.schedule.context import SweepContext

BANDWIDTH_MB = 256
BANDWIDTH_REPEATS = 5


def measure_idle(cell: Cell, monitor_options: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Idle power per domain with the sweep's meters and device, over ``idle_s`` seconds."""
    from nrg.workloads.cells import open_monitor

    with open_monitor(cell, monitor_options) as monitor:
        return {k: float(v) for k, v in monitor.measure_idle(cell.settings.idle_s).items()}


def node_context(cell: Cell, context: SweepContext) -> SweepContext:
    """What a local sweep measures once, measured by the cell on the node it runs on.

    Provenance (hostname, GPU, driver), the idle baseline of the cell's own
    devices (``idle_s``; 0 skips it) and, for the CPU roofline, this node's
    memory bandwidth: cells of one Ray sweep may run on different machines.
    """
    from nrg.meters.hardware import memory_bandwidth_bytes_per_s, provenance

    settings = cell.settings
    idle = measure_idle(cell) if settings.idle_s > 0 else {}
    bandwidth = None
    if settings.roofline and settings.device == "cpu":
        bandwidth = memory_bandwidth_bytes_per_s(size_mb=BANDWIDTH_MB, repeats=BANDWIDTH_REPEATS)
    return dataclasses.replace(context, idle_power_w=idle, mem_bandwidth_bytes_per_s=bandwidth,
                               provenance=provenance())
