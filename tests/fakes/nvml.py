"""A fake pynvml for energy: GPUs with a total-energy counter (or not), power, and faults.

It stands in for the driver, not for nrg. Energy accrues from each GPU's power
over real time (``clock``), so a window of 0.2 s at 100 W reads about 20 J, as
on hardware. The counter can be made to step only every ``counter_update_s``
(a window shorter than that reads 0 J, like a real counter), be unsupported
(``NVMLError_NotSupported``, pre-Volta), and any device can fail at its Nth
reading or on demand. The error classes are pynvml's own, so ``except
nvml.NVMLError`` and the subclass names behave as with the real module.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pynvml as _real

NVMLError = _real.NVMLError
NVMLError_NotSupported = _real.NVMLError_NotSupported
NVMLError_LibraryNotFound = _real.NVMLError_LibraryNotFound
NVMLError_GpuIsLost = _real.NVMLError_GpuIsLost
NVMLError_Uninitialized = _real.NVMLError_Uninitialized


@dataclass(frozen=True)
class FakeProcessInfo:
    """What pynvml's ``c_nvmlProcessInfo_t`` offers: a PID and the memory it holds."""

    pid: int
    usedGpuMemory: int = 0  # pynvml's field name


@dataclass
class FakeGpu:
    """One device: constant power unless changed with :meth:`FakeNvml.set_power`."""

    power_mw: int = 100_000
    counter_supported: bool = True
    counter_update_s: float = 0.0          # 0: continuous; else the counter steps every period
    energy_start_mj: float = 5_000_000.0   # counters count since driver load, not from 0
    fail_at_call: int | None = None        # the Nth energy/power reading (1-based) raises
    fail_code: int = _real.NVML_ERROR_GPU_IS_LOST
    calls: int = 0
    pending_failures: int = 0
    processes: list[int] = field(default_factory=list)   # PIDs holding a compute context
    energy_mj: float = field(default=math.nan)
    since_s: float = field(default=math.nan)


class FakeNvml:
    """The pynvml functions nrg.meters calls, over a list of :class:`FakeGpu`."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost

    def __init__(self, gpus: Sequence[FakeGpu] = (), present: bool = True,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.gpus = list(gpus)
        self.present = present
        self.clock = clock
        self.init_count = 0
        self.shutdown_count = 0
        self._lock = threading.Lock()
        now = clock()
        for gpu in self.gpus:
            gpu.energy_mj, gpu.since_s = gpu.energy_start_mj, now

    # -- library -------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        if not self.present:
            raise NVMLError(_real.NVML_ERROR_LIBRARY_NOT_FOUND)
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        self._check_init()
        self.init_count -= 1
        self.shutdown_count += 1

    def _check_init(self) -> None:
        if self.init_count <= 0:
            raise NVMLError(_real.NVML_ERROR_UNINITIALIZED)

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._check_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(_real.NVML_ERROR_INVALID_ARGUMENT)
        return index

    # -- readings ------------------------------------------------------------------------
    def _accrue(self, gpu: FakeGpu) -> None:
        now = self.clock()
        gpu.energy_mj += gpu.power_mw * (now - gpu.since_s)   # mW x s = mJ
        gpu.since_s = now

    def _reading(self, handle: int) -> FakeGpu:
        self._check_init()
        gpu = self.gpus[handle]
        with self._lock:
            gpu.calls += 1
            fail = gpu.pending_failures > 0 or gpu.calls == gpu.fail_at_call
            if gpu.pending_failures > 0:
                gpu.pending_failures -= 1
        if fail:
            raise NVMLError(gpu.fail_code)
        return gpu

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        gpu = self._reading(handle)
        if not gpu.counter_supported:
            raise NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
        with self._lock:
            self._accrue(gpu)
            if gpu.counter_update_s > 0:   # the value published at the last update tick
                ticks = math.floor(gpu.since_s / gpu.counter_update_s) * gpu.counter_update_s
                return int(gpu.energy_mj - gpu.power_mw * (gpu.since_s - ticks))
            return int(gpu.energy_mj)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return int(self._reading(handle).power_mw)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[FakeProcessInfo]:
        self._check_init()
        return [FakeProcessInfo(pid) for pid in self.gpus[handle].processes]

    # -- test controls -------------------------------------------------------------------
    def set_power(self, index: int, power_mw: int) -> None:
        """Change a GPU's power from now on (energy so far is kept)."""
        gpu = self.gpus[index]
        with self._lock:
            self._accrue(gpu)
            gpu.power_mw = power_mw

    def fail_next(self, index: int, count: int = 1, code: int = _real.NVML_ERROR_GPU_IS_LOST) -> None:
        """Make the next ``count`` readings of GPU ``index`` raise NVMLError(code)."""
        gpu = self.gpus[index]
        with self._lock:
            gpu.pending_failures = count
            gpu.fail_code = code
