"""Named, possibly overlapping measurement windows over a set of energy sources.

A window is two readings of every source (cumulative joules) and the time between
them; the monitor keeps the begin reading per open window and diffs at the end,
so windows may nest or overlap freely. Before each reading the device-sync hook
runs (e.g. ``torch.cuda.synchronize``) so queued GPU work is inside the window.
Read errors go to a log; a window is invalid if any error was logged while it
was open, or if a domain has no reading at one of its ends.

A window can be cut in two at one reading (:meth:`EnergyMonitor.split_window`):
prefill and decode of one ``generate`` call are the two parts of its window, so
part + part = whole exactly and neither part can be negative (every source is
cumulative). Each source splits its own way through the same read: a counter
(NVML total energy, RAPL) is read at the cut; the NVML sampling source takes a
fresh power sample at the cut and its integral runs up to and on from that
instant; the CPU estimate reads the CPU time at the cut.

Every reading also snapshots other processes' activity (:mod:`nrg.meters.activity`),
so each window says how much CPU time the rest of the machine used meanwhile and
how many foreign processes were on the measured GPUs.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError, check_positive
from nrg.meters.activity import CpuActivity, CpuActivityReader, foreign_gpu_processes, other_cpu
from nrg.meters.chain import ChainDecision, choose_sources
from nrg.meters.measurement import DomainEnergy, Measurement, Method
from nrg.meters.source import EnergySource, MeterReadError

if TYPE_CHECKING:
    from nrg.meters.nvml import Nvml


class NoEnergySourceError(RuntimeError):
    """No source could measure any domain; the message lists what was tried and why."""


@dataclass
class WindowResult:
    """Filled in when a ``with monitor.window(name)`` block exits."""

    name: str
    measurement: Measurement | None = None


@dataclass(frozen=True)
class _Reading:
    time_s: float
    values: dict[str, float]      # domain -> cumulative joules (NaN when unreadable)
    log_index: int                # length of the error log right after this reading
    cpu: CpuActivity | None = None
    foreign_gpu_procs: int | None = None   # None: not asked at this reading


def short_window_warning(elapsed_s: float, source: EnergySource) -> str:
    """The warning for a window shorter than the source's update period (its reading may be 0 J)."""
    return (f"window {elapsed_s:.3g} s is shorter than the {source.name} update period "
            f"{source.update_period_s:g} s, so its energy may read 0 J: repeat the workload "
            "(nrg.meters.repeat_until)")


class EnergyMonitor:
    """Measure energy over named windows; a context manager that always closes its sources."""

    def __init__(self, sources: Sequence[EnergySource], decisions: Sequence[ChainDecision] = (),
                 sync: Callable[[], None] | None = None,
                 releases: Sequence[Callable[[], None]] = (),
                 proc_root: str | Path = "/proc", holds_gpu_context: bool | None = None) -> None:
        self._sources = list(sources)
        self.decisions: tuple[ChainDecision, ...] = tuple(decisions)
        self._sync = sync
        self._activity = CpuActivityReader(proc_root)
        # a device-sync hook means this process runs on the GPUs it measures
        self._holds_gpu_context = sync is not None if holds_gpu_context is None else holds_gpu_context
        self.notes: set[str] = set()    # e.g. how foreign GPU processes were counted
        self._releases = list(releases)
        self._lock = threading.RLock()
        self._open: dict[str, _Reading] = {}
        self._errors: list[str] = []
        self._idle_power_w: dict[str, float] = {}
        self.idle_measurement: Measurement | None = None
        self._closed = False
        started: list[EnergySource] = []
        try:
            for source in self._sources:
                source.start()
                started.append(source)
        except BaseException:
            self._sources = started
            self.close()
            raise

    @classmethod
    def auto(cls, meters: Sequence[str] | str | None = None, gpus: Sequence[int] | None = None,
             sysfs_root: str | Path = "/", sync: Callable[[], None] | None = None,
             nvml_module: Nvml | None = None, sample_period_s: float = 0.1,
             proc_root: str | Path = "/proc", **estimate_options: Any) -> EnergyMonitor:
        """The best source per domain on this machine (see :mod:`nrg.meters.chain`).

        ``proc_root`` is where ``stat`` is read for other processes' CPU time (tests pass a fake).
        """
        if sync is not None and not callable(sync):
            raise ParameterError(f"sync={sync!r} is not valid; give a callable such as "
                                 "torch.cuda.synchronize, or None")
        chain = choose_sources(meters, gpus, sysfs_root, nvml_module, sample_period_s,
                               **estimate_options)
        if not chain.sources:
            for release in chain.releases:
                release()
            lines = "\n".join(d.describe() for d in chain.decisions)
            raise NoEnergySourceError(f"no energy source is available:\n{lines}")
        _check_gpus_found(gpus, chain)
        return cls(chain.sources, chain.decisions, sync, chain.releases, proc_root)

    # -- state ---------------------------------------------------------------------------
    @property
    def sources(self) -> tuple[EnergySource, ...]:
        """The energy sources this monitor reads, in chain order."""
        return tuple(self._sources)

    @property
    def domains(self) -> tuple[str, ...]:
        """Every domain measured by some source (``gpu:0``, ``cpu``, ``dram``...)."""
        return tuple(d for s in self._sources for d in s.domains)

    @property
    def idle_power_w(self) -> dict[str, float]:
        """The idle baseline per domain (W), empty until :meth:`measure_idle`."""
        return dict(self._idle_power_w)

    @property
    def open_windows(self) -> tuple[str, ...]:
        """Names of the windows begun and not yet ended."""
        return tuple(self._open)

    # -- readings ------------------------------------------------------------------------
    def _read(self, processes: bool = True) -> _Reading:
        """Read every source once (after the device sync); ``processes`` also lists GPU processes."""
        if self._closed:
            raise RuntimeError("this EnergyMonitor is closed")
        if self._sync is not None:
            self._sync()
        with self._lock:
            now_s = time.perf_counter()
            values: dict[str, float] = {}
            for source in self._sources:
                try:
                    got = source.read_j()
                except MeterReadError as exc:
                    self._errors.append(f"{source.name}: {exc.reason}")
                    got = exc.values
                for domain in source.domains:
                    values[domain] = float(got.get(domain, math.nan))
            cpu = self._activity.read()
            foreign = self._foreign_gpu_procs() if processes else None
            return _Reading(now_s, values, len(self._errors), cpu, foreign)

    def _foreign_gpu_procs(self) -> int | None:
        pids: dict[str, tuple[int, ...]] = {}
        for source in self._sources:
            listing = getattr(source, "gpu_processes", None)
            if listing is not None:
                pids.update(listing())
        if not pids:
            return None
        count, note = foreign_gpu_processes(pids, holds_context=self._holds_gpu_context)
        if note:
            self.notes.add(note)
        return count

    def _measurement(self, name: str, begin: _Reading, end: _Reading) -> Measurement:
        elapsed_s = end.time_s - begin.time_s
        invalid = list(dict.fromkeys(self._errors[begin.log_index:end.log_index]))
        warnings: list[str] = []
        domains: list[DomainEnergy] = []
        for source in self._sources:
            energies = []
            for domain in source.domains:
                energy_j = end.values[domain] - begin.values[domain]
                if math.isnan(energy_j):
                    edge = "begin" if math.isnan(begin.values[domain]) else "end"
                    invalid.append(f"{domain}: no reading at the window's {edge}")
                elif energy_j < 0:
                    invalid.append(f"{domain}: counter went backwards by {-energy_j:.3g} J")
                energies.append(energy_j)
                domains.append(DomainEnergy(domain, energy_j, source.method, source.description,
                                            self._idle_power_w.get(domain)))
            if elapsed_s < source.update_period_s:
                warnings.append(short_window_warning(elapsed_s, source))
            elif source.method is not Method.ESTIMATED and all(e == 0 for e in energies):
                warnings.append(f"{source.name} read 0 J over {elapsed_s:.3g} s: counter not updating?")
        other_s, other_frac = other_cpu(begin.cpu, end.cpu, elapsed_s)
        foreign = [r.foreign_gpu_procs for r in (begin, end) if r.foreign_gpu_procs is not None]
        return Measurement(name, elapsed_s, tuple(domains), valid=not invalid,
                           invalid_reason="; ".join(invalid) or None, warnings=tuple(warnings),
                           other_cpu_s=other_s, other_cpu_frac=other_frac,
                           foreign_gpu_procs=max(foreign) if foreign else None)

    # -- windows -------------------------------------------------------------------------
    def begin_window(self, name: str) -> None:
        """Start window ``name``; names must be unique among open windows."""
        if not isinstance(name, str) or not name:
            raise ParameterError(f"name={name!r} is not valid; a window name is a non-empty string")
        with self._lock:
            if name in self._open:
                raise ParameterError(f"window {name!r} is already open; open windows: "
                                     + ", ".join(repr(n) for n in self._open))
            self._open[name] = self._read()

    def end_window(self, name: str) -> Measurement:
        """End window ``name`` and return its Measurement."""
        return self.end_windows(name)[0]

    def split_window(self, name: str, first: str, rest: str) -> Measurement:
        """Cut open window ``name`` at one reading: return ``first`` (its begin .. now), open ``rest``.

        ``name`` stays open; end it and ``rest`` together with :meth:`end_windows` so
        ``first`` + ``rest`` equals ``name`` in time and in every domain's joules.
        Why one reading: two readings a moment apart would leave a sliver of
        energy in neither part, and a difference of two runs can go negative.
        GPU processes are not listed at the cut (it sits inside the measured work;
        the window's ends list them).
        """
        if not isinstance(rest, str) or not rest:
            raise ParameterError(f"rest={rest!r} is not valid; a window name is a non-empty string")
        with self._lock:
            if name not in self._open:
                opened = ", ".join(repr(n) for n in self._open) or "(none)"
                raise ParameterError(f"window {name!r} is not open; open windows: {opened}")
            if rest in self._open:
                raise ParameterError(f"window {rest!r} is already open; choose another name for rest")
            cut = self._read(processes=False)
            self._open[rest] = cut
            begin = self._open[name]
        return self._measurement(first, begin, cut)

    def end_windows(self, *names: str) -> tuple[Measurement, ...]:
        """End several open windows at one reading (e.g. a whole and its last part)."""
        with self._lock:
            if len(set(names)) != len(names):
                raise ParameterError(f"names={names!r} is not valid; a window is ended once")
            missing = [n for n in names if n not in self._open]
            if missing or not names:
                opened = ", ".join(repr(n) for n in self._open) or "(none)"
                first = missing[0] if missing else None
                raise ParameterError(f"window {first!r} is not open; open windows: {opened}")
            end = self._read()
            begins = [self._open.pop(n) for n in names]
        return tuple(self._measurement(n, b, end) for n, b in zip(names, begins, strict=True))

    @contextmanager
    def window(self, name: str) -> Iterator[WindowResult]:
        """``with monitor.window("decode") as w: ...``; then ``w.measurement``."""
        result = WindowResult(name)
        self.begin_window(name)
        try:
            yield result
        finally:
            result.measurement = self.end_window(name)

    def measure_idle(self, duration_s: float) -> dict[str, float]:
        """Measure power while this process sleeps; later windows carry it as the baseline."""
        check_positive("duration_s", duration_s)
        begin = self._read()
        time.sleep(duration_s)
        measurement = self._measurement("idle", begin, self._read())
        if not measurement.valid:
            raise MeterReadError(f"idle measurement invalid: {measurement.invalid_reason}")
        self.idle_measurement = measurement
        self._idle_power_w = {d.domain: d.energy_j / measurement.elapsed_s
                              for d in measurement.domains}
        return dict(self._idle_power_w)

    def set_idle_baseline(self, power_w: Mapping[str, float]) -> None:
        """Use a baseline measured elsewhere (e.g. once per sweep, in another process)."""
        unknown = sorted(set(power_w) - set(self.domains))
        if unknown:
            raise ParameterError(f"idle baseline domain {unknown[0]!r} is not measured here; "
                                 f"choose from: {', '.join(repr(d) for d in self.domains)}")
        for domain, watts in power_w.items():
            if isinstance(watts, bool) or not isinstance(watts, (int, float)) or not watts >= 0:
                raise ParameterError(f"idle power {domain}={watts!r} is not valid; "
                                     "it must be a number of watts >= 0")
        self._idle_power_w = {d: float(w) for d, w in power_w.items()}

    # -- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop every source's threads and release NVML; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        for step in [s.close for s in self._sources] + self._releases:
            try:
                step()
            except Exception as exc:  # keep closing the rest
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> EnergyMonitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def describe(self) -> str:
        """How each domain is measured and which sources were skipped and why, for a notebook or log."""
        return "\n".join(d.describe() for d in self.decisions)


def _check_gpus_found(gpus: Sequence[int] | None, chain: Any) -> None:
    """GPUs asked for by index must be measured: else CPU and DRAM alone were taken for the GPU's energy.

    Raises :class:`ParameterError` naming the missing indices and the GPUs
    found (after releasing what the chain opened).
    """
    if not gpus:
        return
    found = sorted(int(d.split(":", 1)[1]) for s in chain.sources for d in s.domains if d.startswith("gpu:"))
    missing = [i for i in gpus if i not in found]
    if not missing:
        return
    for release in chain.releases:
        release()
    why = "; ".join(d.describe() for d in chain.decisions if d.domain.startswith("gpu"))
    raise ParameterError(f"gpus={list(gpus)!r} is not valid: no energy source measures GPU(s) {missing} here "
                         f"(GPUs measured: {found or 'none'}){'; ' + why if why else ''}")
