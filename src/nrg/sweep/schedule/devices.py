"""A cell's GPUs: which to meter, synchronize, tune and bound, for one GPU or a sharded model.

Kept out of :mod:`nrg.workloads.generation` so the measured path only asks
"what are this cell's devices" and the answers -- CUDA indices mapped to
NVML's by UUID (:mod:`nrg.dvfs.mapping`), summed peaks for a sharded model
-- are plain functions tested without CUDA.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from nrg.sweep.config import Cell

if TYPE_CHECKING:
    from nrg.meters.nvml import Nvml
    from nrg.sweep.roofline import Peaks


def cuda_indices(cell: Cell) -> tuple[int, ...]:
    """The CUDA indices (as this process numbers them) a cell's model uses; () on the CPU."""
    from nrg.models.placement import cuda_indices as indices

    return indices(cell.settings.device, cell.settings.devices)


def meter_gpus(cuda: Sequence[int], visible: str | None = None, nvml_module: Nvml | None = None,
               cuda_uuid_of: Callable[[int], Any] | None = None) -> list[int] | None:
    """NVML indices to meter for a cell on CUDA devices ``cuda``; None = every GPU (the default chain).

    A CPU cell meters no GPU when the process may see none (``CUDA_VISIBLE_DEVICES=""``,
    as Ray sets it for a task without GPUs: the node's GPUs belong to other
    cells). A GPU cell meters exactly its GPUs, found by UUID. Without NVML
    the indices do not matter (the NVML meter is skipped, with its reason).
    """
    from nrg.dvfs.common import DvfsUnavailableError
    from nrg.dvfs.mapping import nvml_indices_for_cuda_devices, nvml_uuids

    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if not cuda:
        return [] if visible is not None and not visible.strip() else None
    try:
        nvml_uuids(nvml_module)
    except DvfsUnavailableError:
        return list(cuda)
    return list(nvml_indices_for_cuda_devices(cuda, nvml_module, cuda_uuid_of))


def monitor_targets(cell: Cell) -> tuple[list[int] | None, Callable[[], None] | None]:
    """``gpus`` and ``sync`` for ``EnergyMonitor.auto``: every GPU of the cell, each synchronized."""
    cuda = cuda_indices(cell)
    if not cuda:
        return meter_gpus(cuda), None
    import torch

    def sync() -> None:
        for i in cuda:
            torch.cuda.synchronize(i)

    return meter_gpus(cuda), sync


def cuda_peaks(cell: Cell) -> Peaks | None:
    """Datasheet peaks of the cell's GPUs, summed over a sharded model's GPUs."""
    import torch

    from nrg.sweep import roofline

    parts = [roofline.cuda_peaks(torch.cuda.get_device_name(i), cell.dtype) for i in cuda_indices(cell)]
    return roofline.aggregate_peaks(parts)
