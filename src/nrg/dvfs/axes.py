"""The four DVFS sweep axes: ``gpu_clock_mhz``, ``mem_clock_mhz``, ``power_limit_w``, ``cpu_max_freq_khz``.

Each axis checks a whole list of values against what the device supports
before the sweep starts, and around each cell applies one value (None =
leave as is), samples what the hardware actually ran at, and restores.
Before applying, it replays the marker of a previous killed run.

Any value other than None changes the machine, so each axis says what it
would change and where (``changes``); the sweep refuses such values unless
the config has ``allow_hardware_settings: true`` (:func:`nrg.sweep.axes.require_consent`).
None only observes: the clock, power or frequency the hardware chose itself.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from nrg.dvfs import cpu, gpu, recovery
from nrg.dvfs.common import DvfsError, DvfsUnavailableError, settings
from nrg.dvfs.sampler import sampling
from nrg.errors import ParameterError
from nrg.sweep import axes

Columns = Callable[[], dict[str, Any]]


def _check_list(name: str, values: Sequence[Any]) -> list[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ParameterError(f"{name}={values!r} is not valid; give a list of values")
    if len(values) == 0:
        raise ParameterError(f"{name}=[] is not valid; give at least one value "
                             "(None = leave as is) or leave the axis out")
    return [v for v in values if v is not None]


def _unusable(name: str, values: Sequence[Any], exc: Exception) -> ParameterError:
    return ParameterError(f"{name}={list(values)!r} cannot be applied on this machine: {exc}; "
                          "the only valid value here is None (leave as is)")


def _validate_gpu(name: str, check: Callable[[gpu.Gpu, list[Any]], None]) -> Callable[[Sequence[Any]], None]:
    def validate(values: Sequence[Any]) -> None:
        wanted = _check_list(name, values)
        if not wanted:
            return
        try:
            with gpu.open_gpu() as device:
                check(device, wanted)
        except DvfsError as exc:
            raise _unusable(name, wanted, exc) from exc
    return validate


def _gpu_change(action: str, unit: str) -> Callable[[Sequence[Any]], str | None]:
    """``changes`` of a GPU axis: e.g. "lock the graphics clock at 1410, 600 MHz on GPU 0 (H200)"."""
    def changes(values: Sequence[Any]) -> str | None:
        wanted = [v for v in values if v is not None]
        if not wanted:
            return None
        return f"{action} {', '.join(map(str, wanted))} {unit} on {gpu.describe_gpu()}"
    return changes


def _cpu_change(values: Sequence[Any]) -> str | None:
    wanted = [v for v in values if v is not None]
    if not wanted:
        return None
    return f"cap scaling_max_freq at {', '.join(map(str, wanted))} kHz on {cpu.describe_cpus()}"


def _check_graphics(device: gpu.Gpu, values: list[Any]) -> None:
    supported = device.graphics_clocks_mhz()
    for value in values:
        gpu.check_clock("gpu_clock_mhz", value, supported)


def _check_memory(device: gpu.Gpu, values: list[Any]) -> None:
    supported = device.memory_clocks_mhz()
    for value in values:
        gpu.check_clock("mem_clock_mhz", value, supported)


def _check_power(device: gpu.Gpu, values: list[Any]) -> None:
    limits = device.power_limit_range_w()
    for value in values:
        gpu.check_power_w(value, limits)


def validate_cpu_max_freq(values: Sequence[Any]) -> None:
    """Every value inside the CPUs' cpuinfo range; an unusable cpufreq rejects any non-None."""
    wanted = _check_list("cpu_max_freq_khz", values)
    if not wanted:
        return
    try:
        info = cpu.cpufreq_info()
    except DvfsError as exc:
        raise _unusable("cpu_max_freq_khz", wanted, exc) from exc
    for value in wanted:
        cpu.check_max_freq_khz(value, info)


def _recover_first() -> None:
    """Replay a killed run's marker so its settings do not leak into this cell."""
    report = recovery.recover()
    if report.failed:
        warnings.warn("nrg.dvfs: could not restore settings left by a killed run:\n"
                      + "\n".join(report.failed), stacklevel=3)


def _gpu_readers(device: gpu.Gpu, quantity: str) -> dict[str, Callable[[], float]]:
    if quantity == "power":
        return {"gpu_power_w": device.power_w}
    return {"gpu_clock_mhz" if quantity == "graphics" else "mem_clock_mhz":
            lambda: device.clock_mhz(quantity)}


def _gpu_environment(apply: Callable[[Any], contextlib.AbstractContextManager[None]],
                     quantity: str) -> Callable[[Any], contextlib.AbstractContextManager[Columns]]:
    @contextlib.contextmanager
    def environment(value: Any) -> Iterator[Columns]:
        if value is not None:
            _recover_first()
        with contextlib.ExitStack() as stack:
            try:
                device = stack.enter_context(gpu.open_gpu())
            except DvfsUnavailableError:
                if value is not None:
                    raise
                yield dict
                return
            if value is not None:
                stack.enter_context(apply(value))
            yield stack.enter_context(sampling(_gpu_readers(device, quantity),
                                               settings().sample_interval_s))
    return environment


@contextlib.contextmanager
def cpu_environment(value: Any) -> Iterator[Columns]:
    """Cap the CPUs at ``value`` kHz (None: leave), sampling scaling_cur_freq meanwhile."""
    if value is not None:
        _recover_first()
    if value is None and not cpu.cpufreq_dirs():
        yield dict
        return
    with contextlib.ExitStack() as stack:
        if value is not None:
            stack.enter_context(cpu.cpu_max_freq(value))
        yield stack.enter_context(sampling({"cpu_freq_khz": cpu.current_freqs_khz},
                                           settings().sample_interval_s))


gpu_clock_environment = _gpu_environment(lambda v: gpu.locked_gpu_clocks(v), "graphics")
mem_clock_environment = _gpu_environment(lambda v: gpu.locked_memory_clocks(v), "memory")
power_limit_environment = _gpu_environment(lambda v: gpu.gpu_power_limit(v), "power")


def register_all() -> None:
    """Register the four axes in :mod:`nrg.sweep.axes` (done when :mod:`nrg.dvfs` is imported)."""
    axes.register(axes.Axis(
        "gpu_clock_mhz", None, _validate_gpu("gpu_clock_mhz", _check_graphics),
        environment=gpu_clock_environment, changes=_gpu_change("lock the graphics clock at", "MHz"),
        doc="Lock the GPU graphics clock (MHz) for the cell; observed clock in gpu_clock_mhz_observed_*."))
    axes.register(axes.Axis(
        "mem_clock_mhz", None, _validate_gpu("mem_clock_mhz", _check_memory),
        environment=mem_clock_environment, changes=_gpu_change("lock the memory clock at", "MHz"),
        doc="Lock the GPU memory clock (MHz); observed in mem_clock_mhz_observed_*."))
    axes.register(axes.Axis(
        "power_limit_w", None, _validate_gpu("power_limit_w", _check_power),
        environment=power_limit_environment, changes=_gpu_change("set the board power limit to", "W"),
        doc="Set the GPU board power limit (W); observed power in gpu_power_w_observed_*."))
    axes.register(axes.Axis(
        "cpu_max_freq_khz", None, validate_cpu_max_freq, environment=cpu_environment, changes=_cpu_change,
        doc="Cap every CPU's scaling_max_freq (kHz); observed in cpu_freq_khz_observed_*."))
