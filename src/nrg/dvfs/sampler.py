"""Sample what the hardware actually runs at while a setting is applied.

Why: a locked clock can be silently overridden (thermal or power capping,
a driver that accepts the call and ignores it). The observed mean / min / max
go into the result rows, so a setting that did not take shows in the data.
"""
from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

Reader = Callable[[], "float | Sequence[float] | None"]


class Sampler:
    """Poll ``readers`` every ``interval_s`` on a daemon thread; failed reads are skipped."""

    def __init__(self, readers: Mapping[str, Reader], interval_s: float) -> None:
        self.readers = dict(readers)
        self.interval_s = interval_s
        self._values: dict[str, list[float]] = {name: [] for name in self.readers}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nrg-dvfs-sampler", daemon=True)

    def sample(self) -> None:
        """Take one reading of every quantity now."""
        for name, read in self.readers.items():
            try:
                value = read()
            except Exception:
                continue
            if value is None:
                continue
            values = [float(v) for v in value] if isinstance(value, Sequence) else [float(value)]
            with self._lock:
                self._values[name].extend(v for v in values if math.isfinite(v))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self) -> Sampler:
        """Take a first sample now, then keep sampling on a daemon thread; returns ``self`` for chaining."""
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and take a last sample, so short windows still have a reading at each end."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self.sample()

    def columns(self) -> dict[str, Any]:
        """``<name>_observed_mean``, ``_min``, ``_max`` per quantity (None when nothing was read)."""
        if not self._stop.is_set():
            self.sample()
        out: dict[str, Any] = {}
        with self._lock:
            for name, values in self._values.items():
                mean = sum(values) / len(values) if values else None
                out[f"{name}_observed_mean"] = mean
                out[f"{name}_observed_min"] = min(values) if values else None
                out[f"{name}_observed_max"] = max(values) if values else None
        return out


@contextlib.contextmanager
def sampling(readers: Mapping[str, Reader], interval_s: float) -> Iterator[Callable[[], dict[str, Any]]]:
    """Run a :class:`Sampler` for the block; yields its ``columns`` (valid during and after)."""
    sampler = Sampler(readers, interval_s).start()
    try:
        yield sampler.columns
    finally:
        sampler.stop()
