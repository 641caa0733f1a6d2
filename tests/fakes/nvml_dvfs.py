"""A fake pynvml for DVFS: supported clocks, locked clocks, power limit, permissions.

It stands in for the GPU, not for nrg: it keeps the device's state and
enforces what a real driver enforces (root for changes, supported ranges,
memory locking and power management only where "supported", nothing on a
vGPU guest). With ``state_path`` the state lives in a JSON file, so a child
process that is killed mid-cell leaves its changes where the parent test can
see them (as a real GPU would keep them).

The error classes and constants are pynvml's own, so ``except
nvml.NVMLError`` and ``exc.value`` behave as with the real module.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pynvml as _real

DEFAULT_STATE: dict[str, Any] = {
    "present": True,            # False: nvmlInit raises NVMLError_LibraryNotFound
    "admin": True,              # False: every Set/Reset raises NVMLError_NoPermission
    "virtualization": 0,        # NVML_GPU_VIRTUALIZATION_MODE_*; 2 (vGPU guest) blocks changes
    "mem_lock_supported": True,
    "power_supported": True,
    "clocks_follow_lock": True, # False: the lock is accepted but the clock does not move
    "name": "Fake GPU",
    "supported": {"1593": [1410, 1395, 1200, 1005, 810, 600, 210], "810": [810, 600, 210]},
    "default_graphics_mhz": 1410,
    "power_limit_mw": 250_000,
    "default_power_limit_mw": 250_000,
    "power_constraints_mw": [100_000, 300_000],
    "power_usage_mw": 180_000,
    "gpu_locked": None,         # [min, max] or None
    "mem_locked": None,
    "calls": [],                # every state-changing call, in order
}


class FakeNvml:
    """One fake GPU behind the pynvml function names nrg.dvfs uses."""

    def __init__(self, state_path: str | Path | None = None, device_count: int = 1,
                 **overrides: Any) -> None:
        self.state_path = Path(state_path) if state_path is not None else None
        self.device_count = device_count
        self.init_count = 0
        self._memory: dict[str, Any] = copy.deepcopy(DEFAULT_STATE)
        if self.state_path is not None and self.state_path.exists():
            self._memory = json.loads(self.state_path.read_text())
        self._memory.update(copy.deepcopy(overrides))
        self._save(self._memory)

    def cell_spec(self) -> tuple[str, dict[str, Any]] | None:
        """How a sweep's cell process builds this same GPU (:func:`nrg.sweep.schedule.cell.dvfs_spec`).

        Only a file-backed fake can be shared: the state must outlive the process.
        """
        if self.state_path is None:
            return None
        return (f"{type(self).__module__}:{type(self).__qualname__}",
                {"state_path": str(self.state_path), "device_count": self.device_count})

    # -- state ---------------------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        if self.state_path is not None:
            return json.loads(self.state_path.read_text())
        return self._memory

    def _save(self, state: dict[str, Any]) -> None:
        self._memory = state
        if self.state_path is not None:
            tmp = self.state_path.with_name(self.state_path.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(state))
            os.replace(tmp, self.state_path)

    def update(self, **changes: Any) -> None:
        """Change the fake device (e.g. revoke permission) from a test."""
        state = self.state
        state.update(changes)
        self._save(state)

    def _raise(self, code: int) -> None:
        raise _real.NVMLError(code)

    def _check(self, handle: Any = None) -> dict[str, Any]:
        if self.init_count <= 0:
            self._raise(_real.NVML_ERROR_UNINITIALIZED)
        return self.state

    def _change(self, handle: Any, call: str, key: str, value: Any, needs: str | None = None) -> None:
        state = self._check(handle)
        if state["virtualization"] == _real.NVML_GPU_VIRTUALIZATION_MODE_VGPU:
            self._raise(_real.NVML_ERROR_NOT_SUPPORTED)
        if needs and not state[needs]:
            self._raise(_real.NVML_ERROR_NOT_SUPPORTED)
        if not state["admin"]:
            self._raise(_real.NVML_ERROR_NO_PERMISSION)
        state[key] = value
        state["calls"].append(call)
        self._save(state)

    def _graphics(self, state: dict[str, Any]) -> set[int]:
        return {c for clocks in state["supported"].values() for c in clocks}

    # -- init and handles ------------------------------------------------------------------
    def nvmlInit(self) -> None:
        if not self.state["present"]:
            self._raise(_real.NVML_ERROR_LIBRARY_NOT_FOUND)
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        if self.init_count <= 0:
            self._raise(_real.NVML_ERROR_UNINITIALIZED)
        self.init_count -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return self.device_count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self._check()
        if not 0 <= index < self.device_count:
            self._raise(_real.NVML_ERROR_INVALID_ARGUMENT)
        return ("fake-gpu", index)

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._check(handle)["name"]

    def nvmlDeviceGetVirtualizationMode(self, handle: Any) -> int:
        return self._check(handle)["virtualization"]

    # -- clocks ------------------------------------------------------------------------------
    def nvmlDeviceGetSupportedMemoryClocks(self, handle: Any) -> list[int]:
        return sorted((int(m) for m in self._check(handle)["supported"]), reverse=True)

    def nvmlDeviceGetSupportedGraphicsClocks(self, handle: Any, mem_mhz: int) -> list[int]:
        supported = self._check(handle)["supported"]
        if str(mem_mhz) not in supported:
            self._raise(_real.NVML_ERROR_NOT_FOUND)
        return list(supported[str(mem_mhz)])

    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int:
        state = self._check(handle)
        follow = state["clocks_follow_lock"]
        if clock_type in (_real.NVML_CLOCK_GRAPHICS, _real.NVML_CLOCK_SM):
            locked = state["gpu_locked"]
            return locked[1] if locked and follow else state["default_graphics_mhz"]
        if clock_type == _real.NVML_CLOCK_MEM:
            locked = state["mem_locked"]
            return locked[1] if locked and follow else max(int(m) for m in state["supported"])
        self._raise(_real.NVML_ERROR_INVALID_ARGUMENT)
        return 0

    def nvmlDeviceSetGpuLockedClocks(self, handle: Any, min_mhz: int, max_mhz: int) -> None:
        graphics = self._graphics(self._check(handle))
        if min_mhz > max_mhz or not min(graphics) <= min_mhz <= max(graphics) \
                or not min(graphics) <= max_mhz <= max(graphics):
            self._raise(_real.NVML_ERROR_INVALID_ARGUMENT)
        self._change(handle, f"SetGpuLockedClocks {min_mhz} {max_mhz}", "gpu_locked",
                     [min_mhz, max_mhz])

    def nvmlDeviceResetGpuLockedClocks(self, handle: Any) -> None:
        self._change(handle, "ResetGpuLockedClocks", "gpu_locked", None)

    def nvmlDeviceSetMemoryLockedClocks(self, handle: Any, min_mhz: int, max_mhz: int) -> None:
        mems = {int(m) for m in self._check(handle)["supported"]}
        if min_mhz > max_mhz or min_mhz not in mems or max_mhz not in mems:
            self._raise(_real.NVML_ERROR_INVALID_ARGUMENT)
        self._change(handle, f"SetMemoryLockedClocks {min_mhz} {max_mhz}", "mem_locked",
                     [min_mhz, max_mhz], needs="mem_lock_supported")

    def nvmlDeviceResetMemoryLockedClocks(self, handle: Any) -> None:
        self._change(handle, "ResetMemoryLockedClocks", "mem_locked", None,
                     needs="mem_lock_supported")

    # -- power ----------------------------------------------------------------------------------
    def _power(self, handle: Any) -> dict[str, Any]:
        state = self._check(handle)
        if not state["power_supported"]:
            self._raise(_real.NVML_ERROR_NOT_SUPPORTED)
        return state

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: Any) -> list[int]:
        return list(self._power(handle)["power_constraints_mw"])

    def nvmlDeviceGetPowerManagementLimit(self, handle: Any) -> int:
        return self._power(handle)["power_limit_mw"]

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: Any) -> int:
        return self._power(handle)["default_power_limit_mw"]

    def nvmlDeviceSetPowerManagementLimit(self, handle: Any, limit_mw: int) -> None:
        low, high = self._power(handle)["power_constraints_mw"]
        if not low <= limit_mw <= high:
            self._raise(_real.NVML_ERROR_INVALID_ARGUMENT)
        self._change(handle, f"SetPowerManagementLimit {limit_mw}", "power_limit_mw", limit_mw,
                     needs="power_supported")

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        state = self._power(handle)
        return min(state["power_usage_mw"], state["power_limit_mw"])


for _name in dir(_real):
    if _name.startswith(("NVML_", "NVMLError")):
        setattr(FakeNvml, _name, getattr(_real, _name))


def make_sysfs(root: str | Path, cpus: int = 2, min_khz: int = 800_000, max_khz: int = 3_000_000,
               governors: tuple[str, ...] = ("performance", "powersave"),
               governor: str = "powersave") -> Path:
    """A cpufreq tree under ``root`` as the kernel lays it out (plain, writable files)."""
    base = Path(root) / "sys" / "devices" / "system" / "cpu"
    for i in range(cpus):
        d = base / f"cpu{i}" / "cpufreq"
        d.mkdir(parents=True, exist_ok=True)
        files = {"cpuinfo_min_freq": min_khz, "cpuinfo_max_freq": max_khz,
                 "scaling_min_freq": min_khz, "scaling_max_freq": max_khz,
                 "scaling_cur_freq": max_khz - 100_000 * i,
                 "scaling_governor": governor, "scaling_available_governors": " ".join(governors)}
        for name, value in files.items():
            (d / name).write_text(f"{value}\n")
    (base / "online").write_text(f"0-{cpus - 1}\n")
    return Path(root)


def configure_fakes(tmp_path: str | Path, file_backed: bool = False, **overrides: Any) -> Any:
    """Point nrg.dvfs at a fresh fake GPU, fake sysfs and marker under ``tmp_path``."""
    from types import SimpleNamespace

    from nrg import dvfs

    tmp = Path(tmp_path)
    fake = FakeNvml(tmp / "nvml-state.json" if file_backed else None, **overrides)
    root = make_sysfs(tmp / "root")
    marker = tmp / "state" / "dvfs-applied.json"
    dvfs.configure(nvml_module=fake, sysfs_root=root, marker_path=marker, sample_interval_s=0.01)
    return SimpleNamespace(fake=fake, root=root, marker=marker,
                           cpufreq=root / "sys" / "devices" / "system" / "cpu")


def on_fake_gpu(params: Any, **changes: Any) -> Any:
    """Chapter 3's ``Params`` with ``changes`` (parsed values), as if built where the fake GPU were CUDA's.

    The fake GPU is NVML's, not torch's: ``Params(device='cuda')`` is rightly
    refused on this machine (CUDA is not available). The plan and the sections
    read only parsed values, so this copy holds ``changes`` without checking
    the configs against this machine again; everything else was checked when
    ``params`` was built.
    """
    variant = copy.copy(params)
    for name, value in changes.items():
        object.__setattr__(variant, name, value)
    return variant
