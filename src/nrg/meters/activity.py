"""What else ran during a window: other processes' CPU time, foreign processes on the GPUs.

A window's energy on a shared machine is only as clean as the machine was quiet.
RAPL counts the whole package, and even an estimate from this process' CPU time
slows down when other processes compete for the cores. So every reading of the
monitor also takes a cheap snapshot of activity, and every window says how
much CPU time *other* processes used in it:

    other_cpu_s = (busy CPU time of the whole machine, /proc/stat)
                  - (CPU time of this process and its children)

Busy time is ``user + nice + system + irq + softirq + steal`` summed over all
CPUs (``guest`` is already inside ``user``); ``steal`` is time the hypervisor
gave to other virtual machines, interference as real as a neighbour process.
``/proc/stat`` counts clock ticks (10 ms per CPU), so short windows read in
steps of 10 ms and a difference that rounding makes negative reads 0.
Grandchildren whose parent is still alive are not yet in our children's time:
they count as other processes.

On NVIDIA GPUs, ``nvmlDeviceGetComputeRunningProcesses`` lists the processes
holding a compute context (optimum-benchmark checks the same before a run).
Any process but this one is foreign. In a container with its own PID namespace
NVML reports host PIDs and this process does not appear under its own PID; when
the caller says it runs on the GPUs (``holds_context``) one listed process per
GPU is then taken to be this one, and the reading says so.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nrg.meters.estimate import CLK_TCK, children_cpu_s

#: /proc/stat "cpu" line fields counted as busy: user nice system [idle iowait] irq softirq steal.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)
NAMESPACE_NOTE = ("NVML lists no process with this PID (a container's PID namespace?): "
                  "one listed process per GPU is taken to be this one")


@dataclass(frozen=True)
class CpuActivity:
    """One snapshot: the machine's busy CPU seconds and this process tree's CPU seconds."""

    busy_s: float
    own_s: float
    cpus: int


class CpuActivityReader:
    """Reads :class:`CpuActivity` from ``<proc_root>/stat`` (None where there is no procfs).

    ``own_cpu_s`` gives this process tree's CPU seconds (injectable for tests);
    the default is process time plus children, as the CPU estimate counts them.
    """

    def __init__(self, proc_root: str | Path = "/proc",
                 own_cpu_s: Callable[[], float] | None = None) -> None:
        self._stat = Path(proc_root) / "stat"
        self._own = own_cpu_s if own_cpu_s is not None else _own_cpu_s
        self.cpus = self._count_cpus()

    def _count_cpus(self) -> int:
        try:
            lines = self._stat.read_text().splitlines()
        except OSError:
            return 0
        return sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())

    def read(self) -> CpuActivity | None:
        """A snapshot, or None when /proc/stat cannot be read (not Linux, no procfs)."""
        if not self.cpus:
            return None
        try:
            with open(self._stat) as f:
                fields = f.readline().split()[1:]
            busy_ticks = sum(int(fields[i]) for i in _BUSY_FIELDS if i < len(fields))
        except (OSError, ValueError, IndexError):
            return None
        return CpuActivity(busy_ticks / CLK_TCK, float(self._own()), self.cpus)


def _own_cpu_s() -> float:
    return time.process_time() + children_cpu_s()


def other_cpu(begin: CpuActivity | None, end: CpuActivity | None,
              elapsed_s: float) -> tuple[float, float]:
    """Other processes' CPU seconds in a window, and their share of the machine's capacity.

    NaN, NaN when a snapshot is missing; never negative (tick rounding reads 0).
    """
    if begin is None or end is None:
        return float("nan"), float("nan")
    other_s = max(0.0, (end.busy_s - begin.busy_s) - (end.own_s - begin.own_s))
    capacity_s = elapsed_s * end.cpus
    return other_s, (other_s / capacity_s if capacity_s > 0 else float("nan"))


def foreign_gpu_processes(pids_by_gpu: Mapping[str, Iterable[int]], own_pid: int | None = None,
                          holds_context: bool = False) -> tuple[int, str | None]:
    """How many processes other than this one hold a compute context on the GPUs listed.

    Returns the count and a note when the PID namespace had to be guessed (see module doc).
    """
    own = os.getpid() if own_pid is None else own_pid
    listed = {gpu: set(pids) for gpu, pids in pids_by_gpu.items()}
    if any(own in pids for pids in listed.values()) or not holds_context:
        return sum(len(pids - {own}) for pids in listed.values()), None
    busy = [pids for pids in listed.values() if pids]
    if not busy:
        return 0, None
    return sum(len(pids) - 1 for pids in busy), NAMESPACE_NOTE
