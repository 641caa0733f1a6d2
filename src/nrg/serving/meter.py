"""nrg's meters over an engine's processes.

On a GPU, the engine's GPUs are metered by UUID (as every cell's are). On the
CPU the energy is *estimated* from CPU time (:mod:`nrg.meters.estimate`), which
counts nrg's process and its direct children; the engine's work runs in its
worker processes, grandchildren of nrg. :class:`EngineTreeCpu` adds the CPU
time of every live descendant of the engine's main process, so the estimate
covers the whole engine (and still bills no other process on the machine).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nrg.meters import EnergyMonitor
    from nrg.meters.estimate import EstimateSource
    from nrg.sweep.config import Cell

_PROC = Path("/proc")


def descendants(pid: int, proc_root: Path = _PROC) -> list[int]:
    """Every live descendant of ``pid`` (children's children too), from ``/proc/<pid>/task/*/children``."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(proc_root / str(p) / "task")
        except OSError:
            continue
        for tid in tids:
            try:
                kids = [int(k) for k in (proc_root / str(p) / "task" / tid / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def cpu_s(pid: int, proc_root: Path = _PROC) -> float:
    """CPU seconds of ``pid`` and its waited-for children (0 when it is gone)."""
    from nrg.meters.estimate import CLK_TCK

    try:
        fields = (proc_root / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


class EngineTreeCpu:
    """The CPU estimate plus the engine's descendants (which the estimate does not see)."""

    def __init__(self, inner: EstimateSource, engine_pid: int) -> None:
        self.inner, self.engine_pid = inner, engine_pid
        self.name, self.method, self.domains = inner.name, inner.method, inner.domains
        self.update_period_s = inner.update_period_s
        self.power_per_core_w = inner.power_per_core_w
        self.description = f"{inner.description}; with the engine's worker processes"
        self._gone_s = 0.0                       # CPU time of descendants seen and since exited
        self._last: dict[int, float] = {}

    def tree_cpu_s(self) -> float:
        """CPU seconds of the engine's descendants so far (ended ones keep their last reading)."""
        now = {p: cpu_s(p) for p in descendants(self.engine_pid)}
        self._gone_s += sum(v for p, v in self._last.items() if p not in now)
        self._last = now
        return self._gone_s + sum(now.values())

    def start(self) -> None:
        """Start the estimate (nothing to start: the kernel keeps the CPU time)."""
        self.inner.start()

    def read_j(self) -> dict[str, float]:
        """CPU joules so far: (nrg + engine tree) CPU seconds x W per core."""
        base = self.inner.read_j()
        return {"cpu": base["cpu"] + self.tree_cpu_s() * self.power_per_core_w}

    def close(self) -> None:
        """Close the estimate."""
        self.inner.close()


def open_monitor(cell: Cell, monitor_options: Mapping[str, Any] | None, engine_pid: int | None) -> EnergyMonitor:
    """The cell's meters: the engine's GPUs by UUID, or the CPU estimate over the engine's processes."""
    from nrg.meters import EnergyMonitor
    from nrg.meters.chain import choose_sources
    from nrg.meters.estimate import EstimateSource
    from nrg.sweep.schedule.devices import cuda_indices, meter_gpus

    options = dict(monitor_options or {})
    proc_root = options.pop("proc_root", "/proc")
    meters = list(cell.settings.meters) if cell.settings.meters else None
    chain = choose_sources(meters, meter_gpus(cuda_indices(cell)), **options)
    sources: list[Any] = [EngineTreeCpu(s, engine_pid) if isinstance(s, EstimateSource) and engine_pid else s
                          for s in chain.sources]
    monitor = EnergyMonitor(sources, chain.decisions, None, chain.releases, proc_root, holds_gpu_context=False)
    if engine_pid:   # the engine's workers are ours, not "other processes" (other_cpu_s, interference)
        from nrg.meters.activity import CpuActivityReader, _own_cpu_s

        tree = next((s for s in sources if isinstance(s, EngineTreeCpu)), None)
        tree_s = tree.tree_cpu_s if tree is not None else (lambda: sum(cpu_s(p) for p in descendants(engine_pid)))
        monitor._activity = CpuActivityReader(proc_root, own_cpu_s=lambda: _own_cpu_s() + tree_s())
    return monitor
