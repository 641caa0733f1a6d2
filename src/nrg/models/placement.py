"""Where a model's weights go: one device, or sharded over several GPUs.

Why sharding: the paper's 7B models in float32 (28 GB) or a 13B+ model do not
fit one consumer or older data-centre GPU; spreading the layers over the GPUs
of one machine lets them run at all. ``device: auto`` places the model with
accelerate's device map, *balanced* over the cell's GPUs (``devices``, else
every GPU the process sees) so that each GPU holds a share of the layers and
each is metered (see :mod:`nrg.sweep.schedule.devices`). Accelerate's map runs the
layers in order, so the GPUs take turns rather than work at once: the
energy of all of them counts, and the roofline's aggregate bandwidth is a
(loose) lower bound.

The decisions are plain functions of a model and a memory budget per device,
so they are tested on a CPU machine without CUDA.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from nrg.errors import ParameterError

if TYPE_CHECKING:
    import torch

M = TypeVar("M", bound="torch.nn.Module")

SHARDED = "auto"


def cuda_indices(device: str, devices: Sequence[int] | None = None,
                 device_count: Callable[[], int] | None = None,
                 current: Callable[[], int] | None = None) -> tuple[int, ...]:
    """The CUDA indices a model on ``device`` uses: () for CPU, one for ``cuda[:N]``, several for ``auto``.

    ``device_count`` and ``current`` default to torch's; tests pass their own.
    """
    if device == "cpu":
        return ()
    if device == SHARDED:
        if devices is not None:
            return tuple(int(i) for i in devices)
        count = device_count if device_count is not None else _torch_device_count
        return tuple(range(count()))
    if ":" in device:
        return (int(device.split(":", 1)[1]),)
    return ((current or _torch_current_device)(),)


def _torch_device_count() -> int:
    import torch

    return int(torch.cuda.device_count())


def _torch_current_device() -> int:
    import torch

    return int(torch.cuda.current_device())


def free_memory_bytes(indices: Sequence[int]) -> dict[int, int]:
    """Free memory per CUDA device now (the budget a balanced map divides)."""
    import torch

    return {i: int(torch.cuda.mem_get_info(i)[0]) for i in indices}


def balanced_device_map(model: Any, max_memory_bytes: Mapping[int, int]) -> dict[str, int]:
    """Module name -> CUDA index, the layers spread over every device of ``max_memory_bytes``.

    Raises :class:`ParameterError` when the model does not fit the devices
    (accelerate would offload to CPU or disk, which nrg does not measure).
    """
    import logging

    from accelerate.utils import get_balanced_memory, infer_auto_device_map

    if not max_memory_bytes:
        raise ParameterError("devices=[] is not valid; a sharded model needs at least one GPU")
    budget = {int(i): int(b) for i, b in max_memory_bytes.items()}
    no_split = sorted(getattr(model, "_no_split_modules", None) or [])
    quiet = logging.getLogger("accelerate.utils.modeling")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "Device N is not available" when planning on a CPU-only machine
    try:
        balanced = get_balanced_memory(model, max_memory=dict(budget), no_split_module_classes=no_split)
        device_map = infer_auto_device_map(model, max_memory=balanced, no_split_module_classes=no_split)
    finally:
        quiet.setLevel(level)
    spilled = sorted({str(v) for v in device_map.values() if not isinstance(v, int)})
    if spilled:
        raise ParameterError(
            f"the model does not fit on GPUs {sorted(budget)} (accelerate would offload to "
            f"{', '.join(spilled)}); give more devices, a smaller dtype or layers=N")
    return {str(k): int(v) for k, v in device_map.items()}


def occupied_devices(device_map: Mapping[str, Any]) -> tuple[int, ...]:
    """The CUDA indices holding some weights of a dispatched model, in order."""
    found = set()
    for value in device_map.values():
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, str) and value.startswith("cuda:"):
            found.add(int(value.split(":", 1)[1]))
    return tuple(sorted(found))


def shard(model: M, indices: Sequence[int],
          max_memory_bytes: Mapping[int, int] | None = None) -> M:
    """Dispatch a model built on the CPU over the GPUs ``indices`` (balanced); returns the model."""
    from accelerate import dispatch_model

    budget = dict(max_memory_bytes) if max_memory_bytes is not None else free_memory_bytes(indices)
    device_map = balanced_device_map(model, budget)
    dispatched: M = dispatch_model(model, device_map=device_map)   # the same model, hooked
    return dispatched


def input_device(model: Any) -> torch.device:
    """Where a sharded model's inputs go: the device of its input embeddings (its first layer)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    weight = getattr(embeddings, "weight", None)
    if weight is not None:
        return cast("torch.device", weight.device)
    return cast("torch.device", next(model.parameters()).device)
