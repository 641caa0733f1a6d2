"""Put back what a killed nrg process left changed, from the marker file.

Entries still owned by a live process (this one included) are left alone:
they are being restored by their owner, and undoing them would change the
clock under a running measurement. ``force=True`` overrides that, for a stuck
marker whose pid was reused.
"""
from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.dvfs import cpu, gpu, guard, marker
from nrg.dvfs.common import DvfsError
from nrg.dvfs.common import marker_path as _marker_path

if TYPE_CHECKING:
    from nrg.meters.nvml import Nvml

GPU_KINDS = ("gpu_locked_clocks", "mem_locked_clocks", "gpu_power_limit")
CPU_KINDS = ("cpu_max_freq", "cpu_governor")


@dataclass(frozen=True)
class RecoveryReport:
    """What :func:`recover` did; ``failed`` entries stay in the marker for a later try."""

    marker_path: Path
    restored: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every marker entry was restored or left alone, none failed."""
        return not self.failed

    def summary(self) -> str:
        """One line per entry (restored, left alone, FAILED) for the CLI."""
        if not (self.restored or self.skipped or self.failed):
            return f"nothing to recover (no entries in {self.marker_path})"
        lines = [f"restored: {r}" for r in self.restored]
        lines += [f"left alone: {s}" for s in self.skipped]
        lines += [f"FAILED: {f}" for f in self.failed]
        return "\n".join(lines)


def describe(entry: dict[str, Any]) -> str:
    """One line naming an entry: kind, target, applied -> original."""
    target = ", ".join(f"{k}={v}" for k, v in entry.get("target", {}).items())
    return (f"{entry.get('kind')} ({target}): applied {entry.get('applied')!r}, "
            f"original {entry.get('original')!r} [pid {entry.get('pid')}]")


def _owned_elsewhere(entry: dict[str, Any], active: set[str]) -> str | None:
    """Why ``entry`` must not be touched now, or None when it is stale."""
    if entry.get("id") in active:
        return "active in this process"
    if entry.get("host") not in (None, socket.gethostname()):
        return f"written on host {entry.get('host')}"
    pid = int(entry.get("pid", -1))
    if pid != os.getpid() and marker.pid_alive(pid):
        return f"process {pid} is still running"
    return None


def _restore(entry: dict[str, Any], nvml_module: Nvml | None, sysfs_root: str | Path | None) -> None:
    kind = entry.get("kind")
    if kind in GPU_KINDS:
        with gpu.open_gpu(int(entry["target"]["gpu_index"]), nvml_module) as device:
            gpu.restore_entry(device, entry)
    elif kind in CPU_KINDS:
        cpu.restore_entry(entry, sysfs_root)
    else:
        raise DvfsError(f"unknown marker entry kind {kind!r}")


def recover(marker_path: str | Path | None = None, nvml_module: Nvml | None = None,
            sysfs_root: str | Path | None = None, force: bool = False) -> RecoveryReport:
    """Restore every stale entry of the marker, newest first, and delete what was restored.

    ``sysfs_root`` None uses the root recorded in each CPU entry; ``nvml_module``
    None uses the configured one (or pynvml).
    """
    path = _marker_path(marker_path)
    active = guard.active_entry_ids()
    restored: list[str] = []
    skipped: list[str] = []
    failed: list[str] = []
    done: set[str] = set()
    for entry in reversed(marker.read_entries(path)):
        reason = None if force and entry.get("id") not in active else _owned_elsewhere(entry, active)
        if reason:
            skipped.append(f"{describe(entry)} ({reason})")
            continue
        try:
            _restore(entry, nvml_module, sysfs_root)
        except (DvfsError, OSError, KeyError, ValueError) as exc:
            failed.append(f"{describe(entry)}: {exc}")
            continue
        restored.append(describe(entry))
        done.add(entry["id"])
    if done:
        marker.remove_entries(path, done)
    return RecoveryReport(path, tuple(restored), tuple(skipped), tuple(failed))


def recover_leftovers(marker_path: str | Path | None = None) -> RecoveryReport:
    """Restore what a killed process left changed, and say so: call before measuring anything.

    Called at the start of every sweep and chapter (whatever its axes: a cell
    without a clock axis would otherwise measure at a clock a killed run left
    locked) and by a sweep after it had to SIGKILL a cell. Costs one ``stat``
    when there is no marker. Failures are warnings, not errors: the marker
    stays for ``nrg dvfs --recover``, and the rows record the clocks observed.

    One rule with ``nrg dvfs --recover``: restoring a setting nrg itself left
    changed needs no ``allow_hardware_settings`` -- it writes back the value
    the hardware had before nrg, it does not make a new change.
    """
    path = _marker_path(marker_path)
    if not path.exists():
        return RecoveryReport(path)
    report = recover(path)
    if report.restored:
        warnings.warn("nrg.dvfs: restored settings left by a killed process (nrg's own changes: no consent "
                      "needed, this only puts back the values recorded before nrg changed them):\n"
                      + "\n".join(report.restored), stacklevel=2)
    if report.failed:
        warnings.warn("nrg.dvfs: could not restore settings left by a killed process (run "
                      "`nrg dvfs --recover` with the needed rights):\n" + "\n".join(report.failed),
                      stacklevel=2)
    return report
