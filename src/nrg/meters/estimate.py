"""CPU energy *estimated* from CPU time x power per core, when no counter is readable.

energy_j = (CPU seconds of this process, its threads and its children) x W per core,
where W per core is the CPU's rated power (TDP, or Intel's "processor base power")
divided by its physical cores, from the table below, or a value the user gives.
It is a model, not a measurement: it ignores frequency, SMT sharing (two busy
hardware threads count twice), uncore and idle power. Results always say
``estimated``, and the source string names the figure used and where it came from.

Children: CPU time of children already waited for (``RUSAGE_CHILDREN``) plus the
live direct children (``/proc``, else psutil; each includes its own waited-for
children). Live children's times come in clock ticks (10 ms).
"""
from __future__ import annotations

import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

from nrg.errors import ParameterError
from nrg.meters.measurement import Method
from nrg.meters.source import Probe

ESTIMATE = "estimate"
#: Used for a CPU not in the table: a round figure near the median TDP per core of
#: the server CPUs below (3.5-8.5 W per core). Say so wherever it is used.
DEFAULT_POWER_PER_CORE_W = 5.0
#: Children's CPU time comes in clock ticks (USER_HZ = 100 on Linux).
ESTIMATE_UPDATE_PERIOD_S = 0.01

_AMD = "AMD EPYC server processor specifications, amd.com/en/products/specifications/server-processor.html"
_ARK = "Intel ARK product page, ark.intel.com"


@dataclass(frozen=True)
class CpuPower:
    """A rated power figure: a CPU model, its TDP, its physical cores, and where they come from."""

    model: str          # matched as whole words in the CPU's model name
    tdp_w: float
    cores: int
    source: str

    @property
    def power_per_core_w(self) -> float:
        return self.tdp_w / self.cores


CPU_POWER_TABLE: tuple[CpuPower, ...] = (
    CpuPower("EPYC 9654", 360, 96, _AMD),
    CpuPower("EPYC 9554", 360, 64, _AMD),
    CpuPower("EPYC 7763", 280, 64, _AMD),
    CpuPower("EPYC 7713", 225, 64, _AMD),
    CpuPower("EPYC 7742", 225, 64, _AMD),
    CpuPower("EPYC 7543", 225, 32, _AMD),
    CpuPower("EPYC 7313", 155, 16, _AMD),
    CpuPower("Xeon Platinum 8480+", 350, 56, _ARK),
    CpuPower("Xeon Platinum 8380", 270, 40, _ARK),
    CpuPower("Xeon Gold 6248R", 205, 24, _ARK),
    CpuPower("Core i9-13900K", 125, 24, _ARK + " (processor base power)"),
)


def cpu_model_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else :func:`platform.processor`."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _normalize(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"\((r|tm)\)|™|®", " ", text, flags=re.I)).strip().lower()


def lookup_cpu(model_name: str) -> CpuPower | None:
    """The table entry whose model appears in ``model_name`` as whole words, if any."""
    name = _normalize(model_name)
    for entry in CPU_POWER_TABLE:
        key = re.escape(_normalize(entry.model))
        if re.search(rf"(^|[\s-]){key}($|[\s@,])", name):
            return entry
    return None


def resolve_power(cpu_model: str | None = None,
                  power_per_core_w: float | None = None) -> tuple[float, str]:
    """W per core and the sentence that says where it came from."""
    if power_per_core_w is not None:
        if isinstance(power_per_core_w, bool) or not isinstance(power_per_core_w, (int, float)) \
                or not power_per_core_w > 0:
            raise ParameterError(
                f"power_per_core_w={power_per_core_w!r} is not valid; it must be a number of watts > 0")
        return float(power_per_core_w), f"{ESTIMATE}: user value {power_per_core_w:g} W/core"
    model = cpu_model if cpu_model is not None else cpu_model_name()
    entry = lookup_cpu(model)
    if entry is None:
        return DEFAULT_POWER_PER_CORE_W, (
            f"{ESTIMATE}: CPU {model!r} not in the rated-power table, default "
            f"{DEFAULT_POWER_PER_CORE_W:g} W/core (pass power_per_core_w, or get RAPL for a counter)")
    return entry.power_per_core_w, (
        f"{ESTIMATE}: {entry.model} {entry.tdp_w:g} W / {entry.cores} cores = "
        f"{entry.power_per_core_w:.2f} W/core ({entry.source})")


_PROC = Path("/proc")
#: Clock ticks per second of /proc times (USER_HZ).
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _procfs_children_cpu_s() -> float | None:
    """Live direct children's CPU seconds from /proc (Linux), or None where unsupported.

    Reading ``/proc/self/task/*/children`` and each child's ``stat`` costs tens of
    microseconds; psutil's ``children()`` scans every process (milliseconds).
    """
    task_dir = _PROC / "self" / "task"
    try:
        tids = os.listdir(task_dir)
    except OSError:
        return None
    if not (task_dir / str(os.getpid()) / "children").exists():
        return None    # kernel without CONFIG_PROC_CHILDREN
    pids: set[str] = set()
    for tid in tids:
        try:
            pids.update((task_dir / tid / "children").read_text().split())
        except OSError:  # the thread ended meanwhile
            continue
    total_ticks = 0
    for pid in pids:
        try:
            fields = (_PROC / pid / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total_ticks += sum(int(x) for x in fields[11:15])   # utime stime cutime cstime
    return total_ticks / CLK_TCK


def _psutil_children_cpu_s() -> float:
    import psutil

    total_s = 0.0
    for child in psutil.Process().children(recursive=False):
        try:
            t = child.cpu_times()
            total_s += t.user + t.system + t.children_user + t.children_system
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return total_s


def children_cpu_s() -> float:
    """Waited-for children (rusage) plus live direct children (with their own waited ones)."""
    try:
        import resource

        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        reaped_s = usage.ru_utime + usage.ru_stime
    except ImportError:  # not Unix
        times = os.times()
        reaped_s = times.children_user + times.children_system
    live_s = _procfs_children_cpu_s()
    return reaped_s + (live_s if live_s is not None else _psutil_children_cpu_s())


class EstimateSource:
    """Cumulative estimated CPU joules: CPU seconds so far x W per core."""

    name = ESTIMATE
    method = Method.ESTIMATED
    domains = ("cpu",)
    update_period_s = ESTIMATE_UPDATE_PERIOD_S

    def __init__(self, cpu_model: str | None = None, power_per_core_w: float | None = None,
                 include_children: bool = True) -> None:
        self.power_per_core_w, self.description = resolve_power(cpu_model, power_per_core_w)
        self._include_children = bool(include_children)
        if self._include_children and _procfs_children_cpu_s() is None:
            import psutil  # imported now, so the import's CPU time falls in no window

            del psutil

    def cpu_time_s(self) -> float:
        """CPU seconds of this process (all threads) and its children so far."""
        children_s = children_cpu_s() if self._include_children else 0.0
        return time.process_time() + children_s

    def start(self) -> None:
        """Nothing to start: the kernel keeps the CPU time."""

    def read_j(self) -> dict[str, float]:
        return {"cpu": self.cpu_time_s() * self.power_per_core_w}

    def close(self) -> None:
        """Nothing to stop."""


ESTIMATE_OPTIONS: tuple[str, ...] = ("cpu_model", "power_per_core_w", "include_children")


def probe_estimate(**options: object) -> Probe:
    """The estimate is always available; options are checked here, before any work."""
    unknown = sorted(set(options) - set(ESTIMATE_OPTIONS))
    if unknown:
        raise ParameterError(f"{unknown[0]}={options[unknown[0]]!r} is not a valid estimate option; "
                             f"choose from: {', '.join(ESTIMATE_OPTIONS)}")
    source = EstimateSource(**options)  # type: ignore[arg-type]
    return Probe(meter="estimate", offers={ESTIMATE: ("cpu",)},
                 build=lambda _name, _domains: source, details={ESTIMATE: source.description})
