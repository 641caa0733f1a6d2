"""What this machine lets nrg change, and why not.

The probe only reads unless the user consented (``allow_hardware_settings``):
then permission to change the GPU is learnt by writing the power limit back
to its current value (a no-op that needs the same rights as locking clocks),
and ``test_lock=True`` also locks the graphics clock at its highest supported
value and resets it at once. Without consent the rights are inferred (root
or not) and the report says they were not tried, and why.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nrg.dvfs import cpu, gpu
from nrg.dvfs import marker as marker_module
from nrg.dvfs.common import DvfsError, DvfsPermissionError, consent_error, marker_path, settings


@dataclass(frozen=True)
class GpuCapability:
    """The GPU side: supported clocks (MHz, high to low), power limits (W), rights."""

    index: int
    available: bool
    reason: str                                   # why not, or a short description
    name: str | None = None
    virtualization: str | None = None
    memory_clocks_mhz: tuple[int, ...] = ()
    graphics_clocks_mhz: tuple[int, ...] = ()     # over all memory clocks
    current_graphics_mhz: int | None = None
    current_memory_mhz: int | None = None
    power_limit_w: float | None = None
    power_limit_range_w: tuple[float, float] | None = None
    default_power_limit_w: float | None = None
    can_set_power_limit: bool | None = None       # None: could not tell
    can_lock_clocks: bool | None = None
    permission_reason: str = ""

    def clock_levels(self, n: int) -> list[int]:
        """``n`` supported graphics clocks spread from lowest to highest (for a sweep grid)."""
        clocks = sorted(self.graphics_clocks_mhz)
        if n <= 0 or not clocks:
            return []
        if n >= len(clocks):
            return clocks
        if n == 1:
            return [clocks[-1]]
        return sorted({clocks[round(i * (len(clocks) - 1) / (n - 1))] for i in range(n)})


@dataclass(frozen=True)
class CpuCapability:
    """The CPU side: cpufreq range (kHz), governors, whether the limits are writable."""

    available: bool
    reason: str
    cpus: int = 0
    min_khz: int | None = None
    max_khz: int | None = None
    scaling_max_khz: int | None = None
    governors: tuple[str, ...] = ()
    governor: str | None = None
    writable: bool | None = None


@dataclass(frozen=True)
class DvfsProbe:
    """Both sides plus the marker; ``axes`` says which DVFS axes can be swept here."""

    gpu: GpuCapability
    cpu: CpuCapability
    marker_path: str
    pending_entries: int = 0
    axes: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-ready) for ``nrg dvfs probe --json`` and provenance."""
        return asdict(self)

    def summary(self) -> str:
        """Plain text for the CLI and the notebook."""
        return "\n".join(_gpu_lines(self.gpu) + _cpu_lines(self.cpu) + [
            f"Marker: {self.marker_path} ({self.pending_entries} entries to recover)"
            if self.pending_entries else f"Marker: {self.marker_path} (nothing to recover)",
            "Axes usable here: " + (", ".join(k for k, ok in self.axes.items() if ok) or "none"),
        ])


def _range(values: tuple[int, ...]) -> str:
    return f"{min(values)}-{max(values)} ({len(values)} values)" if values else "none listed"


def _gpu_lines(g: GpuCapability) -> list[str]:
    if not g.available:
        return [f"GPU {g.index}: not available: {g.reason}"]
    lines = [f"GPU {g.index}: {g.name} (virtualization: {g.virtualization or 'unknown'})",
             f"  memory clocks MHz: {', '.join(map(str, g.memory_clocks_mhz)) or 'none listed'}",
             f"  graphics clocks MHz: {_range(g.graphics_clocks_mhz)}",
             f"  current clocks: graphics {g.current_graphics_mhz} MHz, memory {g.current_memory_mhz} MHz"]
    if g.power_limit_range_w:
        lo, hi = g.power_limit_range_w
        lines.append(f"  power limit: {g.power_limit_w:g} W (range {lo:g}-{hi:g} W, "
                     f"default {g.default_power_limit_w:g} W)")
    lock = {True: "yes", False: "no", None: "unknown"}
    lines.append(f"  may set power limit: {lock[g.can_set_power_limit]}; may lock clocks: "
                 f"{lock[g.can_lock_clocks]} ({g.permission_reason})")
    return lines


def _cpu_lines(c: CpuCapability) -> list[str]:
    if not c.available:
        return [f"CPU: cpufreq not available: {c.reason}"]
    return [f"CPU: cpufreq on {c.cpus} CPUs, {c.min_khz}-{c.max_khz} kHz, "
            f"scaling_max_freq {c.scaling_max_khz} kHz, governor {c.governor} "
            f"(available: {', '.join(c.governors) or 'none listed'}); "
            f"writable: {'yes' if c.writable else 'no (' + c.reason + ')'}"]


def _try(action: Any) -> tuple[bool | None, str]:
    try:
        action()
    except DvfsPermissionError as exc:
        return False, str(exc)
    except DvfsError as exc:
        return None, str(exc)
    return True, "permitted"


def _inferred_permissions() -> tuple[bool | None, bool | None, str]:
    """Rights guessed without writing anything: root may; otherwise unknown."""
    root = os.geteuid() == 0 if hasattr(os, "geteuid") else False
    why = ("not tried: allow_hardware_settings is off, and trying writes to the GPU; "
           + ("running as root, so probably yes" if root else
              "not root: it needs root or `nvidia-smi -acp UNRESTRICTED`"))
    return None, (True if root else None), why


def _permissions(device: gpu.Gpu, test_lock: bool, graphics: tuple[int, ...],
                 allowed: bool) -> tuple[bool | None, bool | None, str]:
    """(may set power limit, may lock clocks, why) -- writing nothing without consent."""
    if not allowed:
        return _inferred_permissions()
    power_ok, reason = _try(lambda: device.call(
        "writing the power limit back", "nvmlDeviceSetPowerManagementLimit",
        int(device.call("reading the power limit", "nvmlDeviceGetPowerManagementLimit"))))
    lock_ok = power_ok
    if test_lock and graphics:
        def round_trip() -> None:
            device.call("test-locking graphics clocks", "nvmlDeviceSetGpuLockedClocks",
                        max(graphics), max(graphics))
            device.call("resetting locked graphics clocks", "nvmlDeviceResetGpuLockedClocks")
        lock_ok, reason = _try(round_trip)
    elif power_ok is None:
        lock_ok = os.geteuid() == 0 if hasattr(os, "geteuid") else None
        reason = ("running as root" if lock_ok else
                  "not root: NVML device commands need root or `nvidia-smi -acp UNRESTRICTED`")
        reason += " (inferred; not tried)"
    elif not test_lock:
        reason += " (inferred from the power limit; clocks not tried)"
    return power_ok, lock_ok, reason


def probe_gpu(gpu_index: int | None = None, test_lock: bool = False,
              allow_hardware_settings: bool = False) -> GpuCapability:
    """The GPU's DVFS capability; never raises for a missing or locked-down GPU.

    Writes to the GPU (an unchanged power limit, with ``test_lock`` a clock lock
    and reset) only with ``allow_hardware_settings``.
    """
    index = settings().gpu_index if gpu_index is None else gpu_index
    try:
        with gpu.open_gpu(index) as device:
            memory = device.memory_clocks_mhz()
            graphics = device.graphics_clocks_mhz()
            info: dict[str, Any] = {}
            with contextlib.suppress(DvfsError):
                info = {"power_limit_w": device.power_limit_w(),
                        "power_limit_range_w": device.power_limit_range_w(),
                        "default_power_limit_w": device.default_power_limit_w()}
            power_ok, lock_ok, why = _permissions(device, test_lock, graphics, allow_hardware_settings)
            return GpuCapability(
                index, True, "ok", name=device.name(), virtualization=device.virtualization(),
                memory_clocks_mhz=memory, graphics_clocks_mhz=graphics,
                current_graphics_mhz=device.clock_mhz("graphics"),
                current_memory_mhz=device.clock_mhz("memory"), can_set_power_limit=power_ok,
                can_lock_clocks=lock_ok, permission_reason=why, **info)
    except DvfsError as exc:
        return GpuCapability(index, False, str(exc))


def probe_cpu(sysfs_root: str | Path | None = None) -> CpuCapability:
    """The CPU's cpufreq capability; never raises for a missing cpufreq."""
    try:
        info = cpu.cpufreq_info(sysfs_root)
    except DvfsError as exc:
        return CpuCapability(False, str(exc))
    ok, why = cpu.writable(sysfs_root)
    governors = sorted(set(info.governor.values()))
    return CpuCapability(True, why, len(info.cpus), info.min_khz, info.max_khz,
                         max(info.scaling_max_khz.values()), info.governors,
                         ", ".join(governors) or None, ok)


def probe(gpu_index: int | None = None, test_lock: bool = False,
          marker: str | Path | None = None, allow_hardware_settings: bool = False) -> DvfsProbe:
    """Probe GPU and CPU, reading only unless ``allow_hardware_settings``.

    With consent, permission is tried by writing the power limit back, and
    ``test_lock`` also tries a real clock lock (then resets it); ``test_lock``
    without consent is refused before anything is read or written.
    """
    if test_lock and not allow_hardware_settings:
        index = settings().gpu_index if gpu_index is None else gpu_index
        raise consent_error(f"test-lock the graphics clock of GPU {index} (lock at its highest clock, then reset)")
    g = probe_gpu(gpu_index, test_lock, allow_hardware_settings)
    c = probe_cpu()
    path = marker_path(marker)
    gpu_ok = g.available and g.can_lock_clocks is not False
    usable = {"gpu_clock_mhz": gpu_ok and bool(g.graphics_clocks_mhz),
              "mem_clock_mhz": gpu_ok and bool(g.memory_clocks_mhz),
              "power_limit_w": g.available and bool(g.can_set_power_limit),
              "cpu_max_freq_khz": c.available and bool(c.writable)}
    return DvfsProbe(g, c, str(path), len(marker_module.read_entries(path)), usable)
