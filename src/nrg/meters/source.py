"""The one interface every energy source implements, and a small polling thread they share.

A source only reports *cumulative* joules per domain since an arbitrary origin;
the monitor diffs two readings. That is what makes overlapping windows trivial:
a window is just a pair of readings, and any number of pairs can interleave.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from nrg.meters.measurement import Method


class MeterReadError(RuntimeError):
    """Reading a source failed; windows open at that moment become invalid.

    ``values`` holds what could still be read (e.g. the other GPUs, or a sampling
    source's integral so far), so one failure does not spoil later windows.
    """

    def __init__(self, reason: str, values: Mapping[str, float] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.values: dict[str, float] = dict(values or {})


@runtime_checkable
class EnergySource(Protocol):
    """A source of cumulative energy readings for some domains."""

    name: str                     # "nvml-counter", "nvml-sampling", "rapl", "estimate"
    method: Method
    domains: tuple[str, ...]      # "gpu:0", "cpu", "dram"
    update_period_s: float        # windows shorter than this may read 0 J
    description: str              # what goes into Measurement source strings

    def start(self) -> None:
        """Start counting or sampling; readings before this are not defined."""

    def read_j(self) -> dict[str, float]:
        """Cumulative joules per domain since an arbitrary origin; the monitor diffs two readings."""

    def close(self) -> None:
        """Release threads and handles; the source is not read again."""


class Poller:
    """Calls ``tick`` every ``period_s`` on a daemon thread until :meth:`stop`.

    Used by the NVML sampling source (integrate power) and by RAPL (catch counter
    wrap-arounds during long windows). ``tick`` must not raise.
    """

    def __init__(self, tick: Callable[[], None], period_s: float, name: str) -> None:
        self._tick = tick
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the daemon thread."""
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            self._tick()

    def stop(self) -> None:
        """Ask the thread to stop and wait briefly for it (it is a daemon, so it cannot hang the exit)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(1.0, 2 * self._period_s))

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()


@dataclass
class Probe:
    """What one meter (nvml, rapl, estimate) can offer on this machine, and why not the rest.

    ``offers`` maps a source name to the domains it can measure; ``reasons`` maps
    (source name, domain or domain family) to why it cannot. ``build`` makes the
    source for the domains the chain chose; ``release`` undoes the probe (e.g.
    ``nvmlShutdown``) and is called when the monitor closes, or at once if unused.
    """

    meter: str
    offers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    build: Callable[[str, tuple[str, ...]], EnergySource] | None = None
    release: Callable[[], None] | None = None
    details: dict[str, str] = field(default_factory=dict)   # source name -> description
