"""A fake NVIDIA H200 behind pynvml, for whole-program runs in subprocesses (``nrg reference``).

It stands in for the GPU only: the DVFS fake (supported clocks, power limit,
permissions; every state-changing call recorded in a JSON state file shared by
all processes) plus what the energy meters read -- a total-energy counter that
steps every ``counter_update_s`` (like a real counter, so windows shorter than
that read wrong) and an instantaneous power reading. Any other
``nvmlDeviceSet*`` / ``Reset*`` / ``Clear*`` function is recorded too, so a
test that asserts an empty call list catches every write. Energy accrues on
wall-clock time (``time.time``), so every process sees the same counter.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

try:
    from fakes.nvml_dvfs import FakeNvml
except ImportError:  # tests/ collected as a package
    from tests.fakes.nvml_dvfs import FakeNvml

H200: dict[str, Any] = {
    "name": "NVIDIA H200",
    "supported": {"3201": [1980, 1830, 1680, 1530, 1380, 1230, 1080, 930, 780, 630, 480, 345]},
    "default_graphics_mhz": 1980,
    "power_limit_mw": 700_000, "default_power_limit_mw": 700_000,
    "power_constraints_mw": [200_000, 700_000],
    "power_usage_mw": 120_000,
}
EPOCH_S = 1.8e9            # counters count from driver load, not from 0
COUNTER_UPDATE_S = 0.1


class FakeH200(FakeNvml):
    """One H200 at constant power; ``state_path`` is shared by every process that builds it."""

    def __init__(self, state_path: str | Path, counter_update_s: float = COUNTER_UPDATE_S) -> None:
        existing = Path(state_path).exists()
        super().__init__(state_path, **({} if existing else H200))
        self.counter_update_s = counter_update_s

    def nvmlSystemGetDriverVersion(self) -> str:
        return "fake-570.00"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        """mJ since an arbitrary start, published every ``counter_update_s`` as a real counter is."""
        state = self._check(handle)
        published_s = math.floor((time.time() - EPOCH_S) / self.counter_update_s) * self.counter_update_s
        return int(5e9 + state["power_usage_mw"] * published_s)

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return int(self._check(handle)["power_usage_mw"])

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:
        from types import SimpleNamespace

        self._check(handle)
        return SimpleNamespace(total=141 * 2**30, free=140 * 2**30, used=2**30)

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("nvmlDeviceSet", "nvmlDeviceReset", "nvmlDeviceClear")):
            def record(handle: Any, *args: Any) -> None:
                state = self.state
                state["calls"].append(f"{name[len('nvmlDevice'):]} {' '.join(map(str, args))}".strip())
                self._save(state)
            return record
        if name.startswith("nvml"):  # a reading this fake lacks: what NVML says for an unsupported one
            def unsupported(*args: Any) -> None:
                raise self.NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
            return unsupported
        raise AttributeError(name)
