"""What a workload needs from an energy monitor, as a type.

Workloads (a sweep cell's generation, fine-tuning, the chapters' calibration)
only open and close named windows and take the idle baseline; they do not
choose or own the sources. Typing them against :class:`Monitor` instead of
:class:`~nrg.meters.monitor.EnergyMonitor` says so, and lets a test or another
meter stand in without subclassing.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from nrg.meters.measurement import Measurement
    from nrg.meters.monitor import WindowResult


class Monitor(Protocol):
    """Named energy windows over a workload, with an optional idle baseline."""

    def begin_window(self, name: str) -> None:
        """Start window ``name``; several windows may be open at once."""

    def end_window(self, name: str) -> Measurement:
        """End window ``name`` and return its energy and time."""

    def window(self, name: str) -> AbstractContextManager[WindowResult]:
        """A ``with`` block as one window; its Measurement is on the result afterwards."""

    def measure_idle(self, duration_s: float) -> dict[str, float]:
        """Measure idle power (W per domain) that later windows subtract as the baseline."""

    def close(self) -> None:
        """Release the sources; only whoever opened the monitor calls it."""
