"""CPU frequency limits through cpufreq sysfs (``<root>/sys/devices/system/cpu/cpu*/cpufreq``).

Why sysfs and a root parameter: it is the only portable Linux interface, and
a root lets tests (and containers with a bind-mounted /sys) point it at a
tree of plain files. Values are in kHz, as the kernel writes them.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nrg.dvfs import guard, marker
from nrg.dvfs.common import DvfsError, DvfsPermissionError, DvfsUnavailableError, marker_path, settings
from nrg.errors import ParameterError, choice_error

_CPU_DIR = re.compile(r"cpu(\d+)$")


def cpufreq_dirs(sysfs_root: str | Path | None = None) -> dict[str, Path]:
    """``{"cpu0": <root>/sys/devices/system/cpu/cpu0/cpufreq, ...}`` in CPU order."""
    root = Path(sysfs_root) if sysfs_root is not None else settings().sysfs_root
    base = root / "sys" / "devices" / "system" / "cpu"
    found = []
    if base.is_dir():
        for child in base.iterdir():
            match = _CPU_DIR.match(child.name)
            if match and (child / "cpufreq").is_dir():
                found.append((int(match.group(1)), child.name, child / "cpufreq"))
    return {name: path for _, name, path in sorted(found)}


def describe_cpus(sysfs_root: str | Path | None = None) -> str:
    """Which CPUs a cpufreq setting would change (for a refusal message); only lists directories."""
    root = Path(sysfs_root) if sysfs_root is not None else settings().sysfs_root
    names = list(cpufreq_dirs(root))
    where = root / "sys" / "devices" / "system" / "cpu"
    if not names:
        return f"the CPUs (no cpufreq under {where})"
    span = names[0] if len(names) == 1 else f"{names[0]}-{names[-1]}"
    return f"{len(names)} CPU(s) {span} (cpufreq under {where})"


def _read(path: Path) -> str:
    return path.read_text().strip()


@dataclass(frozen=True)
class CpuFreqInfo:
    """What cpufreq reports: hardware range, current limits and governors, in kHz."""

    cpus: tuple[str, ...]
    min_khz: int                      # highest cpuinfo_min_freq over the CPUs
    max_khz: int                      # lowest cpuinfo_max_freq over the CPUs
    scaling_max_khz: dict[str, int]
    governors: tuple[str, ...]        # available on every CPU
    governor: dict[str, str]
    available_khz: tuple[int, ...]    # scaling_available_frequencies where the driver lists them


def cpufreq_info(sysfs_root: str | Path | None = None) -> CpuFreqInfo:
    """Read the cpufreq state, or raise DvfsUnavailableError saying which directory is missing."""
    dirs = cpufreq_dirs(sysfs_root)
    if not dirs:
        root = Path(sysfs_root) if sysfs_root is not None else settings().sysfs_root
        raise DvfsUnavailableError(
            f"no cpufreq: {root / 'sys/devices/system/cpu'}/cpu*/cpufreq does not exist "
            "(no frequency-scaling driver, or a container/VM that hides it)")
    try:
        mins = [int(_read(d / "cpuinfo_min_freq")) for d in dirs.values()]
        maxs = [int(_read(d / "cpuinfo_max_freq")) for d in dirs.values()]
        scaling_max = {cpu: int(_read(d / "scaling_max_freq")) for cpu, d in dirs.items()}
        governor = {cpu: _read(d / "scaling_governor") for cpu, d in dirs.items()
                    if (d / "scaling_governor").exists()}
    except (OSError, ValueError) as exc:
        raise DvfsUnavailableError(f"cpufreq is incomplete: {exc}") from exc
    governors: set[str] | None = None
    available: set[int] = set()
    for d in dirs.values():
        if (d / "scaling_available_governors").exists():
            names = set(_read(d / "scaling_available_governors").split())
            governors = names if governors is None else governors & names
        if (d / "scaling_available_frequencies").exists():
            available.update(int(v) for v in _read(d / "scaling_available_frequencies").split())
    return CpuFreqInfo(tuple(dirs), max(mins), min(maxs), scaling_max,
                       tuple(sorted(governors or ())), governor, tuple(sorted(available)))


def writable(sysfs_root: str | Path | None = None) -> tuple[bool, str]:
    """Whether this process may write scaling_max_freq, and why not (without writing)."""
    import os

    dirs = cpufreq_dirs(sysfs_root)
    if not dirs:
        return False, "no cpufreq directory"
    blocked = [cpu for cpu, d in dirs.items() if not os.access(d / "scaling_max_freq", os.W_OK)]
    if blocked:
        return False, f"scaling_max_freq is not writable for {', '.join(blocked)}: needs root"
    return True, "writable"


def check_max_freq_khz(value: Any, info: CpuFreqInfo) -> int:
    """``value`` as an int inside the hardware range of every CPU, else a ParameterError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or not info.min_khz <= value <= info.max_khz:
        listed = (f"; frequencies the driver lists: {', '.join(map(str, info.available_khz))}"
                  if info.available_khz else "")
        raise ParameterError(f"cpu_max_freq_khz={value!r} is not valid for this CPU; "
                             f"choose a whole number of kHz from {info.min_khz} to {info.max_khz}"
                             f"{listed}")
    return int(value)


def current_freqs_khz(sysfs_root: str | Path | None = None) -> list[int]:
    """``scaling_cur_freq`` of every CPU that reports it (what the CPU actually runs at)."""
    values = []
    for d in cpufreq_dirs(sysfs_root).values():
        with contextlib.suppress(OSError, ValueError):
            values.append(int(_read(d / "scaling_cur_freq")))
    return values


def write_all(sysfs_root: str | Path | None, filename: str, values: Mapping[str, str]) -> None:
    """Write ``values[cpu]`` to each CPU's ``filename``; on failure undo the CPUs already written."""
    dirs = cpufreq_dirs(sysfs_root)
    done: list[tuple[Path, str]] = []
    try:
        for cpu, value in values.items():
            path = dirs[cpu] / filename
            before = _read(path)
            path.write_text(f"{value}\n")
            done.append((path, before))
    except OSError as exc:
        for path, before in reversed(done):
            with contextlib.suppress(OSError):
                path.write_text(f"{before}\n")
        if isinstance(exc, PermissionError):
            raise DvfsPermissionError(f"writing {filename}: no permission; needs root") from exc
        raise DvfsError(f"writing {filename}: {exc}") from exc


def restore_entry(entry: dict[str, Any], sysfs_root: str | Path | None = None) -> None:
    """Undo one CPU marker entry (``sysfs_root`` None: the root recorded in the entry)."""
    root = sysfs_root if sysfs_root is not None else entry["target"]["sysfs_root"]
    filename = {"cpu_max_freq": "scaling_max_freq", "cpu_governor": "scaling_governor"}[entry["kind"]]
    write_all(root, filename, {cpu: str(v) for cpu, v in entry["original"].items()})


@contextlib.contextmanager
def _guarded_cpu(kind: str, filename: str, original: dict[str, Any], value: Any,
                 path: str | None) -> Iterator[None]:
    root = settings().sysfs_root
    entry = marker.new_entry(kind, {"sysfs_root": str(root)}, original, value)
    apply = lambda: write_all(root, filename, {cpu: str(value) for cpu in original})  # noqa: E731
    with guard.guarded(entry, apply, lambda: restore_entry(entry), marker_path(path)):
        yield


@contextlib.contextmanager
def cpu_max_freq(freq_khz: int, *, marker_path: str | None = None) -> Iterator[None]:
    """Cap every CPU's ``scaling_max_freq`` at ``freq_khz``; write the old caps back on exit."""
    info = cpufreq_info()
    value = check_max_freq_khz(freq_khz, info)
    with _guarded_cpu("cpu_max_freq", "scaling_max_freq", dict(info.scaling_max_khz), value,
                      marker_path):
        yield


@contextlib.contextmanager
def cpu_governor(governor: str, *, marker_path: str | None = None) -> Iterator[None]:
    """Switch every CPU to ``governor`` (one of scaling_available_governors); restore on exit."""
    info = cpufreq_info()
    if governor not in info.governors:
        raise choice_error("governor", governor, info.governors)
    with _guarded_cpu("cpu_governor", "scaling_governor", dict(info.governor), governor,
                      marker_path):
        yield
