"""GPU clocks and power limit (NVML) and CPU frequency limits (cpufreq), always restored.

Importing this module registers the sweep axes ``gpu_clock_mhz``,
``mem_clock_mhz``, ``power_limit_w`` and ``cpu_max_freq_khz`` in
:mod:`nrg.sweep.axes`; it stays cheap (pynvml is imported only when a GPU is used).

Typical use::

    from nrg import dvfs
    print(dvfs.probe().summary())          # what this machine allows, and why not
    dvfs.recover()                          # undo what a killed run left behind
    with dvfs.locked_gpu_clocks(1410):      # restored on any exit, SIGTERM included
        ...

Tests and unusual machines redirect everything with :func:`configure`.
"""
from __future__ import annotations

from nrg.dvfs.axes import register_all as _register_all
from nrg.dvfs.common import (
                             DvfsConfig,
                             DvfsError,
                             DvfsPermissionError,
                             DvfsUnavailableError,
                             DvfsUnsupportedError,
                             configure,
                             default_marker_path,
                             settings,
)
from nrg.dvfs.cpu import cpu_governor, cpu_max_freq, cpufreq_info
from nrg.dvfs.gpu import gpu_power_limit, locked_gpu_clocks, locked_memory_clocks, open_gpu
from nrg.dvfs.probe import CpuCapability, DvfsProbe, GpuCapability, probe
from nrg.dvfs.recovery import RecoveryReport, recover

__all__ = [
    "CpuCapability", "DvfsConfig", "DvfsError", "DvfsPermissionError", "DvfsProbe",
    "DvfsUnavailableError", "DvfsUnsupportedError", "GpuCapability", "RecoveryReport",
    "configure", "cpu_governor", "cpu_max_freq", "cpufreq_info", "default_marker_path",
    "gpu_power_limit", "locked_gpu_clocks", "locked_memory_clocks", "open_gpu", "probe",
    "recover", "settings",
]

_register_all()
