"""The tools every workload's cell uses: meters, axis transforms and environments, rows, memory.

Why here, beside the protocol (:mod:`nrg.workloads.protocol`): generation,
fine-tuning and serving measure different things but open the sweep's meters
the same way, apply the same axes (``quant``, ``prune``, clocks, power limit),
write a measured window as the same row and report peak memory alike. Each
workload imports these; none imports another workload.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nrg.meters import EnergyMonitor, Measurement
    from nrg.models import LoadedModel
    from nrg.sweep.config import Cell


def open_monitor(cell: Cell, monitor_options: Mapping[str, Any] | None = None) -> EnergyMonitor:
    """The sweep's meters for the cell's device.

    ``monitor_options`` go to ``EnergyMonitor.auto`` (``sysfs_root``, ``nvml_module``, estimate
    options -- how tests put fake hardware in).
    """
    from nrg.meters import EnergyMonitor
    from nrg.sweep.schedule.devices import monitor_targets

    gpus, sync = monitor_targets(cell)  # NVML indices by UUID; every GPU of a sharded model
    meters = list(cell.settings.meters) if cell.settings.meters else None
    return EnergyMonitor.auto(meters=meters, gpus=gpus, sync=sync, **dict(monitor_options or {}))


def apply_transforms(loaded: LoadedModel, cell: Cell, only: Sequence[str] | None = None,
                     options: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[LoadedModel, dict[str, Any]]:
    """Apply each extra axis' ``transform`` in config order; collect their columns.

    ``only`` limits this to the named axes and ``options`` gives an axis' transform
    keyword arguments: the finetune workload prunes once, then quantizes a copy per
    tuned model, with sparse kernels deferred until after training.
    """
    from nrg.sweep import axes

    columns: dict[str, Any] = {}
    for name, value in cell.axes:
        axis = axes.get(name)
        if axis.transform is None or value == axis.default or (only is not None and name not in only):
            continue
        transform: Callable[..., tuple[Any, dict[str, Any]]] = axis.transform
        result, extra = transform(loaded, value, **dict((options or {}).get(name, {})))
        if result is not loaded and hasattr(result, "parameters"):  # a bare module came back
            loaded = dataclasses.replace(loaded, model=result)
        elif result is not loaded:
            loaded = result
        columns.update(extra)
    return loaded, columns


def enter_environments(stack: ExitStack, cell: Cell) -> list[Callable[[], dict[str, Any]]]:
    """Enter each axis' environment (clocks, power limit) on ``stack``; their observers."""
    from nrg.dvfs.mapping import GPU_GLOBAL_AXES, dvfs_target
    from nrg.sweep import axes
    from nrg.sweep.schedule.devices import cuda_indices

    if cell.settings.device.startswith("cuda") and any(n in GPU_GLOBAL_AXES for n, _ in cell.axes):
        stack.enter_context(dvfs_target(cuda_indices(cell)[0]))  # set and observe the cell's GPU, by UUID
    observers = []
    for name, value in cell.axes:
        axis = axes.get(name)
        if axis.environment is not None:
            observers.append(stack.enter_context(axis.environment(value)))
    return observers


def phase_row(m: Measurement, phase: str, repeat: int, tokens: int, bound_s: float) -> dict[str, Any]:
    """One result row for a measured phase: energy record, token rates and the roofline fraction."""
    from nrg.sweep.roofline import fraction

    rec = m.to_record()
    time_s = rec["time_s"]
    rec.update({
        "repeat": repeat, "phase": phase, "tokens": tokens,
        "tokens_per_s": tokens / time_s if time_s > 0 else math.nan,
        "energy_per_token_j": rec["energy_j"] / tokens if tokens else math.nan,
        "roofline_time_s": bound_s, "roofline_fraction": fraction(bound_s, time_s),
    })
    return rec


def per_token_sample(m: Measurement, tokens: int) -> float:
    """What the adaptive rule watches: energy per token, else time per token."""
    energy = m.total_j() if m.domains else math.nan
    value = energy if math.isfinite(energy) else m.elapsed_s
    return value / tokens


def observe(observers: list[Callable[[], dict[str, Any]]]) -> dict[str, Any]:
    """What the axes' environments report now (the clock or power limit actually held)."""
    out: dict[str, Any] = {}
    for observer in observers:
        out.update(observer())
    return out


def reset_peak_memory(device: str) -> None:
    """Start the cell's CUDA peak-memory count (every GPU of a sharded model); nothing on CPU."""
    if device.startswith("cuda") or device == "auto":
        import torch

        for index in [torch.device(device)] if device != "auto" else range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(index)


def peak_memory_bytes(device: str) -> int:
    """CUDA: max allocated since the cell's reset; CPU: the process' peak RSS.

    The RSS peak is per cell only when the cell has its own process
    (``isolate: true``); in-process runs report the peak of the whole process so far.
    """
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated(torch.device(device)))
    if device == "auto":  # sharded: devices this process did not use report 0
        import torch

        return sum(int(torch.cuda.max_memory_allocated(i)) for i in range(torch.cuda.device_count()))
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def peak_memory_bytes_safe(device: str) -> int | None:
    """Peak device memory of the cell, or None where it cannot be read: a missing figure is not a failure."""
    try:
        return peak_memory_bytes(device)
    except Exception:  # a missing figure must not fail the cell
        return None
