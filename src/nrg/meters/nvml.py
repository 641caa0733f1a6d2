"""GPU energy through NVML: the total-energy counter where supported, else sampled power.

``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load, Volta and newer)
is a true counter: a window is two reads. Older GPUs only report instantaneous
power (``nvmlDeviceGetPowerUsage``, mW), so a background thread samples it and
integrates with the trapezoid rule. The NVML module object is injectable
everywhere (tests pass a fake; the default is ``import pynvml`` from
nvidia-ml-py, which imports fine without a GPU and fails only at ``nvmlInit``).

NVML documents no update period for either reading; published measurements
(e.g. Yang et al. 2023, "Part-time power measurements: nvidia-smi's lack of
attention") report 20-100 ms depending on the GPU, so 100 ms is used as the
conservative period below which a window is flagged as too short.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from nrg.errors import ParameterError
from nrg.meters.measurement import Method
from nrg.meters.source import MeterReadError, Poller, Probe

COUNTER = "nvml-counter"
SAMPLING = "nvml-sampling"
NVML_UPDATE_PERIOD_S = 0.1
DEFAULT_SAMPLE_PERIOD_S = 0.1


class MemoryInfo(Protocol):
    """What ``nvmlDeviceGetMemoryInfo`` returns, as far as nrg reads it."""

    total: int


class RunningProcess(Protocol):
    """One entry of ``nvmlDeviceGetComputeRunningProcesses``."""

    pid: int


class Nvml(Protocol):
    """The part of ``pynvml`` (nvidia-ml-py) that nrg calls; tests pass a fake module with these.

    Handles are opaque (``object``); names and versions come as ``bytes`` from
    old nvidia-ml-py releases and ``str`` from new ones. The clock and power
    setters of :mod:`nrg.dvfs.gpu` are called by name (``Gpu.call``), so they
    are not listed.
    """

    NVMLError: type[Exception]
    NVML_CLOCK_GRAPHICS: int
    NVML_CLOCK_MEM: int
    NVML_ERROR_INVALID_ARGUMENT: int
    NVML_ERROR_NO_PERMISSION: int
    NVML_ERROR_NOT_SUPPORTED: int
    NVML_ERROR_LIBRARY_NOT_FOUND: int
    NVML_ERROR_GPU_IS_LOST: int
    NVML_ERROR_FUNCTION_NOT_FOUND: int
    NVML_ERROR_DRIVER_NOT_LOADED: int

    def nvmlInit(self) -> None:
        """Start NVML (reference-counted: one shutdown per init)."""

    def nvmlShutdown(self) -> None:
        """Release one init."""

    def nvmlSystemGetDriverVersion(self) -> bytes | str:
        """The driver's version string."""

    def nvmlDeviceGetCount(self) -> int:
        """How many GPUs NVML sees."""

    def nvmlDeviceGetHandleByIndex(self, index: int) -> object:
        """An opaque handle for GPU ``index`` (NVML's numbering, not CUDA's)."""

    def nvmlDeviceGetName(self, handle: object) -> bytes | str:
        """The product name."""

    def nvmlDeviceGetUUID(self, handle: object) -> bytes | str:
        """``GPU-...``: how a CUDA device is matched to an NVML one."""

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> MemoryInfo:
        """Memory sizes (bytes)."""

    def nvmlDeviceGetClockInfo(self, handle: object, clock_type: int) -> int:
        """The current clock of ``clock_type`` (MHz)."""

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int:
        """The board's power draw now (mW)."""

    def nvmlDeviceGetPowerManagementLimit(self, handle: object) -> int:
        """The power limit in force (mW)."""

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:
        """Energy since the driver loaded (mJ; Volta and newer)."""

    def nvmlDeviceGetVirtualizationMode(self, handle: object) -> int:
        """0 none, 1 passthrough, 2 vGPU guest, 3 vGPU host, 4 vSGA host."""

    def nvmlDeviceGetComputeRunningProcesses(self, handle: object) -> Sequence[RunningProcess]:
        """Processes holding a compute context on the GPU."""


def load_nvml(nvml_module: Nvml | None = None) -> Nvml:
    """The NVML module to use: the injected one, else ``pynvml`` (nvidia-ml-py).

    The package's only ``import pynvml``: meters, DVFS, provenance and the
    reference planner all come through here, so a fake NVML given once reaches
    every reader and no path can pick up a second, real library.
    """
    if nvml_module is not None:
        return nvml_module
    import pynvml  # heavy-ish and optional: imported only when GPUs are probed

    module: Nvml = pynvml
    return module


def nvml_error_text(exc: BaseException) -> str:
    """``"NVMLError_GpuIsLost: GPU is lost"``: the class names the cause, str() the message."""
    try:
        message = str(exc)
    except Exception:  # pynvml's __str__ may itself call into the library
        message = repr(exc)
    return f"{type(exc).__name__}: {message}"


def check_gpu_indices(gpus: Sequence[int] | None) -> tuple[int, ...] | None:
    """Type-check ``gpus`` before any NVML call: non-negative, distinct integers."""
    if gpus is None:
        return None
    if isinstance(gpus, (str, bytes)) or not isinstance(gpus, Sequence):
        raise ParameterError(f"gpus={gpus!r} is not valid; give a list of GPU indices such as [0, 1]")
    for g in gpus:
        if isinstance(g, bool) or not isinstance(g, int) or g < 0:
            raise ParameterError(f"gpus={list(gpus)!r} is not valid; GPU indices are integers >= 0")
    if len(set(gpus)) != len(gpus):
        raise ParameterError(f"gpus={list(gpus)!r} is not valid; an index is repeated")
    return tuple(gpus)


def _init_reason(exc: BaseException) -> str:
    if type(exc).__name__ == "NVMLError_LibraryNotFound":
        return ("NVML library not found (no NVIDIA driver here): install the NVIDIA driver "
                "to measure GPU energy")
    if type(exc).__name__ == "NVMLError_DriverNotLoaded":
        return "NVIDIA driver not loaded: load it (nvidia-smi should work) to measure GPU energy"
    return f"nvmlInit failed ({nvml_error_text(exc)})"


def _validate_against_count(gpus: tuple[int, ...] | None, count: int) -> tuple[int, ...]:
    if gpus is None:
        return tuple(range(count))
    missing = [g for g in gpus if g >= count]
    if missing:
        valid = ", ".join(str(i) for i in range(count)) or "none (NVML sees no GPU)"
        raise ParameterError(f"gpus={list(gpus)!r} is not valid: GPU {missing[0]} does not exist; "
                             f"valid indices: {valid}")
    return gpus


def probe_nvml(gpus: Sequence[int] | None = None, nvml_module: Nvml | None = None,
               sample_period_s: float = DEFAULT_SAMPLE_PERIOD_S) -> Probe:
    """Find which GPUs offer the energy counter and which only power samples."""
    wanted = check_gpu_indices(gpus)
    probe = Probe(meter="nvml")
    try:
        nvml = load_nvml(nvml_module)
    except ImportError as exc:
        reason = f"pynvml not importable ({exc}): pip install nvidia-ml-py"
        probe.reasons.update({(COUNTER, "gpu"): reason, (SAMPLING, "gpu"): reason})
        return probe
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        reason = _init_reason(exc)
        probe.reasons.update({(COUNTER, "gpu"): reason, (SAMPLING, "gpu"): reason})
        return probe
    try:
        indices = _validate_against_count(wanted, int(nvml.nvmlDeviceGetCount()))
        handles = _inspect_gpus(nvml, indices, probe)
    except BaseException:
        nvml.nvmlShutdown()
        raise
    if not indices:
        probe.reasons.update({(COUNTER, "gpu"): "NVML sees no GPU", (SAMPLING, "gpu"): "NVML sees no GPU"})
    probe.release = nvml.nvmlShutdown
    probe.details = {COUNTER: COUNTER, SAMPLING: f"{SAMPLING} (every {sample_period_s:g} s)"}

    def build(source: str, domains: tuple[str, ...]) -> NvmlCounterSource | NvmlSamplingSource:
        chosen = [int(d.split(":")[1]) for d in domains]
        picked = {i: handles[i] for i in chosen}
        if source == COUNTER:
            return NvmlCounterSource(nvml, picked)
        return NvmlSamplingSource(nvml, picked, sample_period_s=sample_period_s)

    probe.build = build
    return probe


def _inspect_gpus(nvml: Nvml, indices: tuple[int, ...], probe: Probe) -> dict[int, object]:
    """Try each reading once per GPU; record offers and the reason for each refusal."""
    handles: dict[int, object] = {}
    counter: list[str] = []
    sampling: list[str] = []
    for index in indices:
        domain = f"gpu:{index}"
        try:
            handles[index] = nvml.nvmlDeviceGetHandleByIndex(index)
        except nvml.NVMLError as exc:
            reason = f"no handle for GPU {index} ({nvml_error_text(exc)})"
            probe.reasons.update({(COUNTER, domain): reason, (SAMPLING, domain): reason})
            continue
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handles[index])
            counter.append(domain)
        except nvml.NVMLError as exc:
            why = ("total-energy counter not supported (needs Volta or newer)"
                   if type(exc).__name__ == "NVMLError_NotSupported" else nvml_error_text(exc))
            probe.reasons[(COUNTER, domain)] = why
        try:
            nvml.nvmlDeviceGetPowerUsage(handles[index])
            sampling.append(domain)
        except nvml.NVMLError as exc:
            probe.reasons[(SAMPLING, domain)] = f"power reading failed ({nvml_error_text(exc)})"
    probe.offers = {COUNTER: tuple(counter), SAMPLING: tuple(sampling)}
    return handles


def running_pids(nvml: Nvml, handles: dict[int, object]) -> dict[str, tuple[int, ...]]:
    """PIDs holding a compute context per GPU; a GPU whose list cannot be read is left out.

    Why not an error: the list only flags interference, it never changes a joule,
    and some GPUs (vGPU, MIG without privileges) refuse it.
    """
    out: dict[str, tuple[int, ...]] = {}
    for index, handle in handles.items():
        try:
            procs = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except (nvml.NVMLError, AttributeError):
            continue
        out[f"gpu:{index}"] = tuple(int(p.pid) for p in procs)
    return out


class NvmlCounterSource:
    """Cumulative energy from ``nvmlDeviceGetTotalEnergyConsumption`` (mJ -> J)."""

    name = COUNTER
    method = Method.COUNTER
    update_period_s = NVML_UPDATE_PERIOD_S
    description = COUNTER

    def __init__(self, nvml: Nvml, handles: dict[int, object]) -> None:
        self._nvml = nvml
        self._handles = dict(handles)
        self.domains = tuple(f"gpu:{i}" for i in self._handles)

    def start(self) -> None:
        """Nothing to start: the counter runs in the driver."""

    def read_j(self) -> dict[str, float]:
        """Cumulative joules per GPU from the driver's energy counter; raises MeterReadError on a failed GPU."""
        values: dict[str, float] = {}
        errors: list[str] = []
        for index, handle in self._handles.items():
            try:
                values[f"gpu:{index}"] = self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1e3
            except self._nvml.NVMLError as exc:
                errors.append(f"gpu:{index} energy counter: {nvml_error_text(exc)}")
        if errors:
            raise MeterReadError("; ".join(errors), values)
        return values

    def gpu_processes(self) -> dict[str, tuple[int, ...]]:
        """Processes on each measured GPU (see :mod:`nrg.meters.activity`)."""
        return running_pids(self._nvml, self._handles)

    def close(self) -> None:
        """Nothing to stop."""


class NvmlSamplingSource:
    """Power (mW) sampled on a thread and integrated (trapezoid rule) into joules per GPU.

    Each read also takes a fresh sample so window edges are exact in time. An NVML
    error in the thread is kept and raised (with the integral so far) at the next
    read, which marks the windows open across it invalid; integration resumes
    from the last good sample.
    """

    name = SAMPLING
    method = Method.INTEGRATED

    def __init__(self, nvml: Nvml, handles: dict[int, object],
                 sample_period_s: float = DEFAULT_SAMPLE_PERIOD_S,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if not sample_period_s > 0:
            raise ParameterError(f"sample_period_s={sample_period_s!r} is not valid; it must be > 0")
        self._nvml = nvml
        self._handles = dict(handles)
        self._clock = clock
        self.domains = tuple(f"gpu:{i}" for i in self._handles)
        self.update_period_s = max(sample_period_s, NVML_UPDATE_PERIOD_S)
        self.description = f"{SAMPLING} (every {sample_period_s:g} s)"
        self._lock = threading.Lock()
        self._energy_j = {d: 0.0 for d in self.domains}
        self._last: dict[str, tuple[float, float]] = {}   # domain -> (time_s, power_w)
        self._errors: list[str] = []
        self._poller = Poller(self.sample, sample_period_s, name="nrg-nvml-sampling")

    def start(self) -> None:
        """Take the first power sample and start the sampling thread."""
        self.sample()
        self._poller.start()

    def sample(self) -> None:
        """Read every GPU's power once and extend the integrals (never raises)."""
        for index, handle in self._handles.items():
            domain = f"gpu:{index}"
            try:
                power_w = self._nvml.nvmlDeviceGetPowerUsage(handle) / 1e3
            except self._nvml.NVMLError as exc:
                with self._lock:
                    self._errors.append(f"{domain} power sample: {nvml_error_text(exc)}")
                continue
            with self._lock:   # stamp under the lock: the thread and a read may race
                now_s = self._clock()
                if domain in self._last:
                    then_s, then_w = self._last[domain]
                    self._energy_j[domain] += 0.5 * (then_w + power_w) * (now_s - then_s)
                self._last[domain] = (now_s, power_w)

    def read_j(self) -> dict[str, float]:
        """Joules integrated from power samples so far per GPU; sampling errors since the last read raise."""
        self.sample()
        with self._lock:
            values = dict(self._energy_j)
            errors, self._errors = self._errors, []
        if errors:
            raise MeterReadError("; ".join(dict.fromkeys(errors)), values)
        return values

    def gpu_processes(self) -> dict[str, tuple[int, ...]]:
        """Processes on each measured GPU (see :mod:`nrg.meters.activity`)."""
        return running_pids(self._nvml, self._handles)

    def close(self) -> None:
        """Stop the sampling thread."""
        self._poller.stop()
