"""GPU clocks and power limit through NVML, with a reason for every refusal.

Why the care with errors: locking clocks needs root, is refused on vGPU guests
and unsupported on consumer boards; a bare ``NVMLError: Insufficient
Permissions`` in a notebook tells a researcher nothing. Every NVML failure is
turned into a :class:`~nrg.dvfs.common.DvfsError` subclass that says what to do.

NVML cannot *read* locked clocks, so the "original" state of a clock lock is
taken to be unlocked and restoring means ``nvmlDeviceReset*LockedClocks``.
The power limit is read and written back exactly.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nrg.dvfs import guard, marker
from nrg.dvfs.common import (
    PERMISSION_HINT,
    DvfsError,
    DvfsPermissionError,
    DvfsUnavailableError,
    DvfsUnsupportedError,
    load_nvml,
    marker_path,
    settings,
)
from nrg.errors import ParameterError

if TYPE_CHECKING:
    from nrg.meters.nvml import Nvml

_VIRTUALIZATION = {0: "none", 1: "passthrough", 2: "vGPU guest", 3: "vGPU host", 4: "vSGA host"}


def explain(exc: Exception, nvml: Nvml, action: str, virtualization: str | None = None) -> DvfsError:
    """The NVML error ``exc`` met while ``action`` as a DvfsError that says why and what to do."""
    code = getattr(exc, "value", None)
    if code == nvml.NVML_ERROR_LIBRARY_NOT_FOUND:
        return DvfsUnavailableError("no NVIDIA GPU: the NVML library was not found "
                                    "(no NVIDIA driver on this machine)")
    if code in (nvml.NVML_ERROR_DRIVER_NOT_LOADED, nvml.NVML_ERROR_GPU_IS_LOST):
        return DvfsUnavailableError(f"no usable NVIDIA GPU ({action}): {exc}")
    if code == nvml.NVML_ERROR_NO_PERMISSION:
        return DvfsPermissionError(f"{action}: no permission; {PERMISSION_HINT}")
    if code in (nvml.NVML_ERROR_NOT_SUPPORTED, nvml.NVML_ERROR_FUNCTION_NOT_FOUND):
        why = "not supported by this GPU or driver"
        if virtualization not in (None, "none"):
            why = (f"not supported: the GPU is virtualized ({virtualization}); "
                   "the hypervisor usually blocks clock and power control")
        return DvfsUnsupportedError(f"{action}: {why}")
    if code == nvml.NVML_ERROR_INVALID_ARGUMENT:
        return DvfsError(f"{action}: the driver rejected the value (invalid argument)")
    return DvfsError(f"{action}: NVML error: {exc}")


@dataclass(frozen=True)
class Gpu:
    """An open NVML device; ``call`` runs one NVML function with errors explained."""

    nvml: Nvml
    handle: object
    index: int

    def call(self, action: str, function: str, *args: Any) -> Any:
        """Call NVML ``function`` on this GPU; its errors become DVFS errors that say what was tried.

        Returns ``Any``: the function is named at run time and NVML's results differ
        (an int, bytes, a list of clocks, a pair of limits); each caller converts.
        """
        try:
            return getattr(self.nvml, function)(self.handle, *args)
        except self.nvml.NVMLError as exc:
            raise explain(exc, self.nvml, f"{action} on GPU {self.index}",
                          self.virtualization()) from exc

    def virtualization(self) -> str | None:
        """'none', 'passthrough', 'vGPU guest', ... or None when NVML cannot say."""
        try:
            mode = self.nvml.nvmlDeviceGetVirtualizationMode(self.handle)
        except Exception:
            return None
        return _VIRTUALIZATION.get(int(mode), f"mode {mode}")

    def name(self) -> str:
        """The GPU's product name as NVML reports it."""
        name = self.call("reading the name", "nvmlDeviceGetName")
        return name.decode() if isinstance(name, bytes) else str(name)

    def memory_clocks_mhz(self) -> tuple[int, ...]:
        """Supported memory clocks (MHz), highest first: the values a memory lock may take."""
        clocks = self.call("listing memory clocks", "nvmlDeviceGetSupportedMemoryClocks")
        return tuple(sorted({int(c) for c in clocks}, reverse=True))

    def graphics_clocks_mhz(self, mem_mhz: int | None = None) -> tuple[int, ...]:
        """Graphics clocks for one memory clock, or for any of them when ``mem_mhz`` is None."""
        mems = [mem_mhz] if mem_mhz is not None else self.memory_clocks_mhz()
        found: set[int] = set()
        for mem in mems:
            found.update(int(c) for c in self.call(
                f"listing graphics clocks at memory {mem} MHz",
                "nvmlDeviceGetSupportedGraphicsClocks", mem))
        return tuple(sorted(found, reverse=True))

    def clock_mhz(self, which: str) -> int:
        """The current ``graphics`` or ``memory`` clock (MHz), to check that a lock took effect."""
        kind = self.nvml.NVML_CLOCK_GRAPHICS if which == "graphics" else self.nvml.NVML_CLOCK_MEM
        return int(self.call(f"reading the {which} clock", "nvmlDeviceGetClockInfo", kind))

    def power_w(self) -> float:
        """The current board power draw (W)."""
        return float(self.call("reading power", "nvmlDeviceGetPowerUsage")) / 1000.0

    def power_limit_range_w(self) -> tuple[float, float]:
        """The (lowest, highest) power limit (W) the driver accepts, so a bad limit fails before it is set."""
        low, high = self.call("reading power limit constraints",
                              "nvmlDeviceGetPowerManagementLimitConstraints")
        return low / 1000.0, high / 1000.0

    def power_limit_w(self) -> float:
        """The power limit in force now (W)."""
        return float(self.call("reading the power limit", "nvmlDeviceGetPowerManagementLimit")) / 1000.0

    def default_power_limit_w(self) -> float:
        """The factory power limit (W), restored when a power-limit change is undone."""
        return float(self.call("reading the default power limit",
                               "nvmlDeviceGetPowerManagementDefaultLimit")) / 1000.0


@contextlib.contextmanager
def open_gpu(gpu_index: int | None = None, nvml_module: Nvml | None = None) -> Iterator[Gpu]:
    """Initialise NVML (reference-counted by NVML itself) and open one GPU."""
    nvml = load_nvml(nvml_module)
    index = settings().gpu_index if gpu_index is None else gpu_index
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise explain(exc, nvml, "starting NVML") from exc
    try:
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except nvml.NVMLError as exc:
            if getattr(exc, "value", None) == nvml.NVML_ERROR_INVALID_ARGUMENT:
                raise DvfsUnavailableError(f"no GPU with index {index}") from exc
            raise explain(exc, nvml, f"opening GPU {index}") from exc
        yield Gpu(nvml, handle, index)
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def describe_gpu(gpu_index: int | None = None) -> str:
    """``"GPU 0 (NVIDIA H200)"``: which device a setting would change, for a refusal message.

    Only reads (the name); falls back to ``"GPU 0"`` when NVML cannot tell.
    """
    index = settings().gpu_index if gpu_index is None else gpu_index
    try:
        with open_gpu(index) as device:
            return f"GPU {index} ({device.name()})"
    except DvfsError:
        return f"GPU {index}"


# -- checks before anything is changed ---------------------------------------------------


def _as_int(parameter: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ParameterError(f"{parameter}={value!r} is not valid; it must be a whole number of MHz")
    return int(value)


def check_clock(parameter: str, value: Any, supported: Sequence[int]) -> int:
    """``value`` as an int if it is one of ``supported``, else a ParameterError listing them."""
    clock = _as_int(parameter, value)
    if clock not in supported:
        listed = ", ".join(str(c) for c in supported) or "none"
        raise ParameterError(f"{parameter}={value!r} is not supported by this GPU; "
                             f"supported clocks (MHz): {listed}")
    return clock


def check_power_w(value: Any, limits_w: tuple[float, float]) -> float:
    """``value`` in watts if inside the device's power-limit constraints."""
    low, high = limits_w
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ParameterError(f"power_limit_w={value!r} is not valid for this GPU; "
                             f"choose a value from {low:g} to {high:g} W")
    return float(value)


# -- restoring (shared with recovery after a kill -9) ------------------------------------


def restore_entry(gpu: Gpu, entry: dict[str, Any]) -> None:
    """Undo one marker entry of a GPU kind."""
    kind = entry["kind"]
    if kind == "gpu_locked_clocks":
        gpu.call("resetting locked graphics clocks", "nvmlDeviceResetGpuLockedClocks")
    elif kind == "mem_locked_clocks":
        gpu.call("resetting locked memory clocks", "nvmlDeviceResetMemoryLockedClocks")
    elif kind == "gpu_power_limit":
        gpu.call("restoring the power limit", "nvmlDeviceSetPowerManagementLimit",
                 int(entry["original"]["limit_mw"]))
    else:
        raise DvfsError(f"unknown GPU marker entry kind {kind!r}")


@contextlib.contextmanager
def _guarded_gpu(gpu: Gpu, kind: str, original: Any, applied: Any, apply: Any,
                 path: Any) -> Iterator[None]:
    entry = marker.new_entry(kind, {"gpu_index": gpu.index}, original, applied)
    with guard.guarded(entry, apply, lambda: restore_entry(gpu, entry), marker_path(path)):
        yield


@contextlib.contextmanager
def _locked_clocks(domain: str, min_mhz: int, max_mhz: int | None, gpu_index: int | None,
                   path: str | None) -> Iterator[None]:
    """Lock the ``graphics`` or ``memory`` clock to a supported range; reset on exit."""
    parameter, kind, setter = _CLOCK_DOMAINS[domain]
    with open_gpu(gpu_index) as gpu:
        supported = gpu.graphics_clocks_mhz() if domain == "graphics" else gpu.memory_clocks_mhz()
        low = check_clock(parameter, min_mhz, supported)
        high = check_clock(parameter, max_mhz if max_mhz is not None else min_mhz, supported)
        if low > high:
            raise ParameterError(f"min_mhz={low} is above max_mhz={high}")
        apply = lambda: gpu.call(f"locking {domain} clocks to {low}-{high} MHz",  # noqa: E731
                                 setter, low, high)
        with _guarded_gpu(gpu, kind, None, [low, high], apply, path):
            yield


# domain -> (parameter name, marker kind, NVML setter)
_CLOCK_DOMAINS: dict[str, tuple[str, str, str]] = {
    "graphics": ("gpu_clock_mhz", "gpu_locked_clocks", "nvmlDeviceSetGpuLockedClocks"),
    "memory": ("mem_clock_mhz", "mem_locked_clocks", "nvmlDeviceSetMemoryLockedClocks"),
}


def locked_gpu_clocks(min_mhz: int, max_mhz: int | None = None, *, gpu_index: int | None = None,
                      marker_path: str | None = None) -> contextlib.AbstractContextManager[None]:
    """Lock the graphics clock to ``[min_mhz, max_mhz]`` (one value: pinned); reset on exit."""
    return _locked_clocks("graphics", min_mhz, max_mhz, gpu_index, marker_path)


def locked_memory_clocks(min_mhz: int, max_mhz: int | None = None, *, gpu_index: int | None = None,
                         marker_path: str | None = None) -> contextlib.AbstractContextManager[None]:
    """Lock the memory clock (Ampere and later, where the board allows it); reset on exit."""
    return _locked_clocks("memory", min_mhz, max_mhz, gpu_index, marker_path)


@contextlib.contextmanager
def gpu_power_limit(power_w: float, *, gpu_index: int | None = None,
                    marker_path: str | None = None) -> Iterator[None]:
    """Set the board power limit within its constraints; write the previous limit back on exit."""
    with open_gpu(gpu_index) as gpu:
        limit_w = check_power_w(power_w, gpu.power_limit_range_w())
        original_mw = int(gpu.call("reading the power limit", "nvmlDeviceGetPowerManagementLimit"))
        limit_mw = round(limit_w * 1000)
        apply = lambda: gpu.call(f"setting the power limit to {limit_w:g} W",  # noqa: E731
                                 "nvmlDeviceSetPowerManagementLimit", limit_mw)
        with _guarded_gpu(gpu, "gpu_power_limit", {"limit_mw": original_mw},
                          {"limit_mw": limit_mw}, apply, marker_path):
            yield
