"""DRAM energy *estimated* by codecarbon's RAM rule, when no RAPL DRAM counter is readable.

A constant power over the window's wall time, from the machine's memory size by
codecarbon's rule (``codecarbon/external/ram.py``: ``RAM._estimate_dimm_count`` and
``RAM._calculate_ram_power``, codecarbon 3.3.2): a DIMM count guessed from the size,
5 W per DIMM on x86 (1.5 W on ARM) with a smaller share per DIMM beyond 4, 8 and
16 DIMMs, at least two DIMMs' worth. Like codecarbon's default ("machine"
tracking), it is the whole machine's memory: DIMMs draw it whether or not this
process touches them, so an idle baseline cancels it (net DRAM energy is 0), and
the CPU-time estimate of the ``cpu`` domain plus this one is the scope codecarbon
reports as CPU + RAM.
"""
from __future__ import annotations

import math
import platform
import time

from nrg.errors import ParameterError
from nrg.meters import codecarbon_data
from nrg.meters.measurement import Method

ESTIMATE_DRAM = "estimate-dram"
#: codecarbon's RAM rule: W per DIMM (``RAM_SLOT_POWER_X86``) and on ARM; bytes per GB (GiB).
DIMM_POWER_X86_W = 5.0
DIMM_POWER_ARM_W = 1.5
BYTES_PER_GB = 1024**3
#: The codecarbon release whose rule the constants above copy (tests/test_meters_dram.py checks the rule).
RULE_VERSION = "3.3.2"


def dimm_count(memory_gb: float) -> int:
    """The DIMMs codecarbon guesses behind ``memory_gb`` GB (RAM._estimate_dimm_count).

    Up to 2 GB one DIMM; up to 16 GB two; up to 64 GB four; up to 128 GB eight;
    beyond, at least eight of the largest common size (4-128 GB) that fits, at most 32.
    """
    if memory_gb <= 2:
        return 1
    if memory_gb <= 16:
        return 2
    if memory_gb <= 64:
        return 4
    if memory_gb <= 128:
        return 8
    for size_gb in (128, 64, 32, 16, 8, 4):
        if size_gb <= memory_gb / 8:
            return min(math.ceil(memory_gb / size_gb), 32)
    return 8


def ram_power_w(memory_gb: float, arm: bool = False) -> float:
    """The RAM power codecarbon gives ``memory_gb`` GB (RAM._calculate_ram_power).

    W per DIMM for the first 4 DIMMs, 90 % of it for the next 4, 80 % for the
    next 8, 70 % beyond 16; at least two x86 DIMMs' worth (3 W on ARM).
    """
    per_dimm_w = DIMM_POWER_ARM_W if arm else DIMM_POWER_X86_W
    minimum_w = 3.0 if arm else 2 * per_dimm_w
    n = dimm_count(memory_gb)
    total_w = per_dimm_w * (min(n, 4) + 0.9 * min(max(n - 4, 0), 4)
                            + 0.8 * min(max(n - 8, 0), 8) + 0.7 * max(n - 16, 0))
    return max(minimum_w, total_w)


def machine_memory_gb() -> float:
    """This machine's total memory in GB of 1024**3 bytes (what codecarbon's RAM rule takes)."""
    import psutil

    return float(psutil.virtual_memory().total) / BYTES_PER_GB


def is_arm() -> bool:
    """ARM CPUs get codecarbon's lower per-DIMM figure."""
    machine = platform.machine().lower()
    return "arm" in machine or "aarch" in machine


def resolve_dram_power(dram_power_w: float | None = None, memory_gb: float | None = None,
                       arm: bool | None = None) -> tuple[float, str]:
    """DRAM watts and the sentence that says where they came from."""
    if dram_power_w is not None:
        if isinstance(dram_power_w, bool) or not isinstance(dram_power_w, (int, float)) \
                or not dram_power_w >= 0:
            raise ParameterError(
                f"dram_power_w={dram_power_w!r} is not valid; it must be a number of watts >= 0")
        return float(dram_power_w), f"{ESTIMATE_DRAM}: user value {dram_power_w:g} W"
    gb = machine_memory_gb() if memory_gb is None else float(memory_gb)
    arm = is_arm() if arm is None else arm
    watts = ram_power_w(gb, arm)
    return watts, (f"{ESTIMATE_DRAM}: {gb:.1f} GB as {dimm_count(gb)} DIMMs -> {watts:g} W, codecarbon "
                   f"{RULE_VERSION}'s RAM rule carried by nrg ({'ARM' if arm else 'x86'}: "
                   f"{DIMM_POWER_ARM_W if arm else DIMM_POWER_X86_W:g} W per DIMM, tapered beyond 4, "
                   f"codecarbon {_installed()})")


def _installed() -> str:
    """Whether codecarbon is installed here (the rule needs none of its files, so it works without)."""
    try:
        codecarbon_data.package_dir()
    except codecarbon_data.CodecarbonDataMissing:
        return "not installed here"
    return f"{codecarbon_data.version()} installed"


class DramEstimateSource:
    """Cumulative estimated DRAM joules: wall seconds so far x the RAM rule's constant power."""

    name = ESTIMATE_DRAM
    method = Method.ESTIMATED
    domains: tuple[str, ...] = ("dram",)
    update_period_s = 1e-6     # a clock, not a counter: no update period to speak of

    def __init__(self, dram_power_w: float | None = None) -> None:
        self.power_w, self.description = resolve_dram_power(dram_power_w)

    def start(self) -> None:
        """Nothing to start: the clock runs."""

    def read_j(self) -> dict[str, float]:
        """Joules so far since an arbitrary origin (only differences mean anything)."""
        return {"dram": time.perf_counter() * self.power_w}

    def close(self) -> None:
        """Nothing to stop."""
