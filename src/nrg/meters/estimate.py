"""CPU and DRAM energy *estimated* when no counter is readable, from codecarbon's data and rules.

CPU: energy_j = (CPU seconds of this process, its threads and its children) x W per core,
where W per core is the CPU's rated power (TDP) from codecarbon's CPU power table
(``data/hardware/cpu_power.csv``, matched to the model name as codecarbon matches
it) divided by the chip's physical cores, or a value the user gives. Where the
model or its core count is unknown, codecarbon's own default applies: 4 W per CPU
thread (``codecarbon.core.cpu.DEFAULT_POWER_PER_CORE``). It is a model, not a
measurement: it ignores frequency, SMT sharing (two busy hardware threads count
twice), uncore and idle power.

DRAM (the ``dram`` domain, also offered by this meter): see :mod:`nrg.meters.dram`.

Results always say ``estimated``, and the source string names the figure used and
where it came from.

Children: CPU time of children already waited for (``RUSAGE_CHILDREN``) plus the
live direct children (``/proc``, else psutil; each includes its own waited-for
children). Live children's times come in clock ticks (10 ms).
"""
from __future__ import annotations

import math
import os
import platform
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nrg.errors import ParameterError
from nrg.meters import codecarbon_data
from nrg.meters.dram import ESTIMATE_DRAM, DramEstimateSource, resolve_dram_power
from nrg.meters.measurement import Method
from nrg.meters.source import EnergySource, Probe

ESTIMATE = "estimate"
#: codecarbon's default for a CPU missing from its table: W per CPU thread
#: (``codecarbon.core.cpu.DEFAULT_POWER_PER_CORE`` in codecarbon 3.3.2; a test checks it).
DEFAULT_POWER_PER_CORE_W = 4.0
DEFAULT_POWER_SOURCE = ("codecarbon's figure of 4 W per CPU thread for a CPU it cannot match "
                        "(codecarbon.core.cpu.DEFAULT_POWER_PER_CORE)")
#: Children's CPU time comes in clock ticks (USER_HZ = 100 on Linux).
ESTIMATE_UPDATE_PERIOD_S = 0.01


@dataclass(frozen=True)
class CpuPower:
    """A CPU model matched in codecarbon's table: its TDP, and the chip's cores when known."""

    model: str              # the name in codecarbon's table
    tdp_w: float
    cores: int | None       # the chip's physical cores (None: unknown)
    cores_source: str       # where ``cores`` comes from
    source: str             # where ``tdp_w`` comes from

    @property
    def power_per_core_w(self) -> float | None:
        """TDP / physical cores: a fully busy core's share of the rated power."""
        return self.tdp_w / self.cores if self.cores else None


def cpu_model_name(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else :func:`platform.processor`."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cpuinfo_field(text: str, name: str) -> str | None:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def chip_cores(model_name: str, cpuinfo: str | Path | None = "/proc/cpuinfo") -> tuple[int | None, str]:
    """The chip's physical cores and where that comes from; (None, why) when unknown.

    The model name says it for AMD ("AMD EPYC 7763 64-Core Processor"); otherwise
    /proc/cpuinfo's ``cpu cores`` (cores per socket), but not in a virtual machine
    (``hypervisor`` flag), where it counts the vCPUs given, not the chip's cores.
    ``cpuinfo`` None: the name came from another machine, so only the name counts.
    """
    found = re.search(r"(\d+)-Core", model_name, flags=re.I)
    if found:
        return int(found.group(1)), "the model name"
    if cpuinfo is None:
        return None, "not in the model name given"
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None, f"{cpuinfo} unreadable"
    if "hypervisor" in (_cpuinfo_field(text, "flags") or "").split():
        return None, "a virtual machine shows its vCPUs, not the chip's cores"
    cores = _cpuinfo_field(text, "cpu cores")
    if cores and cores.isdigit() and int(cores) > 0:
        return int(cores), f"'cpu cores' in {cpuinfo}"
    return None, f"no 'cpu cores' in {cpuinfo}"


def _codecarbon_clean(name: str) -> str:
    """The clean-up codecarbon does before its second match (TDP._get_matching_cpu)."""
    name = name.replace("(R)", "")
    cut = name.find(" CPU @ ")
    if cut > 0:
        name = name[:cut]
    name = name.replace(" CPU", "")
    return re.sub(r" @\s*\d+\.\d+GHz", "", name)


def _tokens(text: str) -> frozenset[str]:
    """The token set of rapidfuzz's default_process (lower case, non-alphanumerics as spaces)."""
    return frozenset(re.sub(r"[\W_]+", " ", text.lower()).split())


def match_cpu_name(model_name: str, names: tuple[str, ...]) -> str | None:
    """The entry of ``names`` codecarbon would pick for ``model_name`` (its non-greedy rule).

    codecarbon (``codecarbon.core.cpu.TDP._get_matching_cpu``) takes an exact
    case-insensitive match, then the same after removing "(R)", " CPU" and the
    clock, then a token-set match at score 100 (one name's words all in the
    other's) only when exactly one name matches. So "AMD EPYC 7763 64-Core
    Processor" finds "AMD EPYC 7763", and a bare "AMD EPYC" (every EPYC matches)
    finds nothing.
    """
    by_lower = {n.lower(): n for n in reversed(names)}
    for candidate in (model_name, _codecarbon_clean(model_name)):
        if candidate.lower() in by_lower:
            return by_lower[candidate.lower()]
    query = _tokens(_codecarbon_clean(model_name))
    if not query:
        return None
    hits = [n for n in names if (t := _tokens(n)) and (t <= query or query <= t)]
    return hits[0] if len(hits) == 1 else None


def _watts(text: str) -> float:
    try:
        return float(text)
    except ValueError:     # a few rows of codecarbon's table are malformed ("27.29.5")
        return math.nan


def cpu_power_table() -> dict[str, float]:
    """The CPU power table of codecarbon: model name -> TDP in W (NaN where the row is malformed)."""
    return {row["Name"]: _watts(row.get("TDP") or "")
            for row in codecarbon_data.read_csv(codecarbon_data.CPU_POWER) if row.get("Name")}


@lru_cache(maxsize=64)
def _matched(model_name: str) -> str | None:
    table = cpu_power_table()
    name = match_cpu_name(model_name, tuple(table))
    return name if name is not None and table[name] > 0 else None


def lookup_cpu(model_name: str, cpuinfo: str | Path | None = "/proc/cpuinfo") -> CpuPower | None:
    """The rated power of ``model_name`` from codecarbon's table, with the chip's cores if known.

    Matched among all names as codecarbon matches (:func:`match_cpu_name`); a
    match whose TDP is not a number counts as no match. ``cpuinfo`` describes
    the machine ``model_name`` came from (None: another machine, so the cores
    can only come from the name).
    """
    name = _matched(model_name)
    if name is None:
        return None
    cores, cores_source = chip_cores(model_name, cpuinfo)
    tdp_w = cpu_power_table()[name]
    return CpuPower(name, tdp_w, cores, cores_source, codecarbon_data.cite(codecarbon_data.CPU_POWER))


def resolve_power(cpu_model: str | None = None, power_per_core_w: float | None = None,
                  cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[float, str]:
    """W per core and the sentence that says where it came from."""
    if power_per_core_w is not None:
        if isinstance(power_per_core_w, bool) or not isinstance(power_per_core_w, (int, float)) \
                or not power_per_core_w > 0:
            raise ParameterError(
                f"power_per_core_w={power_per_core_w!r} is not valid; it must be a number of watts > 0")
        return float(power_per_core_w), f"{ESTIMATE}: user value {power_per_core_w:g} W/core"
    model = cpu_model if cpu_model is not None else cpu_model_name(cpuinfo)
    default = (f"default {DEFAULT_POWER_PER_CORE_W:g} W/core: {DEFAULT_POWER_SOURCE} "
               "(pass power_per_core_w, or get RAPL for a counter)")
    try:
        entry = lookup_cpu(model, cpuinfo if cpu_model is None else None)
    except codecarbon_data.CodecarbonDataMissing as exc:
        # The lent GPU image has no codecarbon: the constant nrg carries stands in for the table.
        return DEFAULT_POWER_PER_CORE_W, (
            f"{ESTIMATE}: CPU {model!r} not looked up: {codecarbon_data.short_reason(exc)} -- "
            f"{default}, a constant nrg carries")
    if entry is None:
        return DEFAULT_POWER_PER_CORE_W, (
            f"{ESTIMATE}: CPU {model!r} not in codecarbon's CPU power table "
            f"({codecarbon_data.cite(codecarbon_data.CPU_POWER)}), {default}")
    if entry.power_per_core_w is None:
        return DEFAULT_POWER_PER_CORE_W, (
            f"{ESTIMATE}: {entry.model} is rated {entry.tdp_w:g} W ({entry.source}) but the chip's "
            f"core count is unknown ({entry.cores_source}), {default}")
    return entry.power_per_core_w, (
        f"{ESTIMATE}: {entry.model} {entry.tdp_w:g} W ({entry.source}) / {entry.cores} cores "
        f"({entry.cores_source}) = {entry.power_per_core_w:.2f} W/core")


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
    domains: tuple[str, ...] = ("cpu",)
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
        """CPU joules so far: CPU seconds x W per core."""
        return {"cpu": self.cpu_time_s() * self.power_per_core_w}

    def close(self) -> None:
        """Nothing to stop."""


ESTIMATE_OPTIONS: tuple[str, ...] = ("cpu_model", "power_per_core_w", "include_children", "dram_power_w")


def check_estimate_options(options: dict[str, object]) -> None:
    """Refuse an unknown or bad estimate option before any meter is probed (no file is read)."""
    unknown = sorted(set(options) - set(ESTIMATE_OPTIONS))
    if unknown:
        raise ParameterError(f"{unknown[0]}={options[unknown[0]]!r} is not a valid estimate option; "
                             f"choose from: {', '.join(ESTIMATE_OPTIONS)}")
    if options.get("power_per_core_w") is not None:
        resolve_power(power_per_core_w=options["power_per_core_w"])  # type: ignore[arg-type]
    if options.get("dram_power_w") is not None:
        resolve_dram_power(options["dram_power_w"])  # type: ignore[arg-type]


def probe_estimate(**options: object) -> Probe:
    """The estimate is always available (without codecarbon too: carried constants); options checked first."""
    check_estimate_options(options)
    dram = DramEstimateSource(options.pop("dram_power_w", None))  # type: ignore[arg-type]
    cpu = EstimateSource(**options)  # type: ignore[arg-type]
    sources: dict[str, EnergySource] = {ESTIMATE: cpu, ESTIMATE_DRAM: dram}
    return Probe(meter="estimate", offers={ESTIMATE: ("cpu",), ESTIMATE_DRAM: ("dram",)},
                 build=lambda name, _domains: sources[name],
                 details={ESTIMATE: cpu.description, ESTIMATE_DRAM: dram.description})
