"""Energy meters: NVML (GPU), RAPL (CPU package, DRAM), CPU-time and DRAM estimates, and windows.

>>> from nrg.meters import EnergyMonitor
>>> with EnergyMonitor.auto() as monitor:          # best source per domain on this machine
...     monitor.measure_idle(1.0)                  # optional idle baseline (W per domain)
...     with monitor.window("work") as w:
...         work()
...     w.measurement.to_record()                  # energy_j, net_energy_j, energy_method, ...

Every figure says how it was obtained (``counter``, ``integrated``, ``estimated``)
and by which source; ``monitor.decisions`` says why better sources were skipped.
"""
from __future__ import annotations

from collections.abc import Callable

from nrg.meters.chain import CHAIN, METERS, Chain, ChainDecision, choose_sources
from nrg.meters.dram import DramEstimateSource, ram_power_w
from nrg.meters.estimate import (
    DEFAULT_POWER_PER_CORE_W,
    CpuPower,
    EstimateSource,
    cpu_model_name,
    cpu_power_table,
    lookup_cpu,
)
from nrg.meters.measurement import DomainEnergy, Measurement, Method
from nrg.meters.monitor import EnergyMonitor, NoEnergySourceError, WindowResult
from nrg.meters.nvml import NvmlCounterSource, NvmlSamplingSource
from nrg.meters.protocols import Monitor
from nrg.meters.rapl import RaplSource
from nrg.meters.repeat import repeat_until
from nrg.meters.source import EnergySource, MeterReadError


def torch_cuda_sync() -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` when CUDA is available, else None (a ready ``sync=`` value)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.synchronize if torch.cuda.is_available() else None


__all__ = [
    "CHAIN", "DEFAULT_POWER_PER_CORE_W", "METERS", "Chain", "ChainDecision",
    "CpuPower", "DomainEnergy", "DramEstimateSource", "EnergyMonitor", "EnergySource", "EstimateSource",
    "Measurement",
    "MeterReadError", "Method", "Monitor", "NoEnergySourceError", "NvmlCounterSource", "NvmlSamplingSource",
    "RaplSource", "WindowResult", "choose_sources", "cpu_model_name", "cpu_power_table", "lookup_cpu",
    "ram_power_w", "repeat_until", "torch_cuda_sync",
]
