"""A fake pynvml with several GPUs, each with a UUID, an energy counter and its own DVFS state.

It stands in for a multi-GPU machine: NVML numbers the GPUs by PCI bus, CUDA
(``CUDA_VISIBLE_DEVICES``, fastest-first order) may number them differently,
and the only common key is the UUID. Energy readings come from
:class:`tests.fakes.nvml.FakeNvml` (one counter per GPU); clock and power
calls go to one :class:`tests.fakes.nvml_dvfs.FakeNvml` per GPU, so a test
can see *which* physical GPU a lock landed on.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pynvml as _real

try:
    from fakes import nvml as energy_fake
    from fakes import nvml_dvfs as dvfs_fake
except ImportError:  # tests/ collected as a package
    from tests.fakes import nvml as energy_fake
    from tests.fakes import nvml_dvfs as dvfs_fake

_ENERGY_CALLS = ("nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetPowerUsage")


class UuidNvml:
    """GPUs in NVML's order; ``uuids[i]`` is NVML device i's UUID (without the ``GPU-`` prefix)."""

    def __init__(self, uuids: Sequence[str], power_mw: Sequence[int] | None = None) -> None:
        self.uuids = list(uuids)
        powers = list(power_mw) if power_mw is not None else [100_000] * len(self.uuids)
        self.energy = energy_fake.FakeNvml([energy_fake.FakeGpu(power_mw=p) for p in powers])
        self.devices = [dvfs_fake.FakeNvml() for _ in self.uuids]
        self.init_count = 0

    # -- library -------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.init_count += 1
        self.energy.nvmlInit()
        for device in self.devices:
            device.nvmlInit()

    def nvmlShutdown(self) -> None:
        self.init_count -= 1
        self.energy.nvmlShutdown()
        for device in self.devices:
            device.nvmlShutdown()

    def nvmlDeviceGetCount(self) -> int:
        return self.energy.nvmlDeviceGetCount()

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return self.energy.nvmlDeviceGetHandleByIndex(index)

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return "GPU-" + self.uuids[handle]

    # -- readings and settings: energy from the energy fake, the rest from the GPU's own DVFS fake
    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name in _ENERGY_CALLS:
            return getattr(self.energy, name)
        if name.startswith("nvmlDevice"):
            def call(handle: int, *args: Any) -> Any:
                return getattr(self.devices[handle], name)(("fake-gpu", handle), *args)
            return call
        raise AttributeError(name)

    def locked(self) -> list[Any]:
        """Each GPU's locked graphics clock range (None = unlocked), in NVML order."""
        return [device.state["gpu_locked"] for device in self.devices]


for _name in dir(_real):
    if _name.startswith(("NVML_", "NVMLError")):
        setattr(UuidNvml, _name, getattr(_real, _name))


def cuda_side(cuda_order: Sequence[str]) -> Callable[[int], str]:
    """What torch reports for ``cuda:i`` when CUDA lists the GPUs as ``cuda_order`` (UUIDs)."""
    return lambda index: cuda_order[index]
