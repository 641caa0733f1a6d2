"""Which NVML device is CUDA device N: matched by UUID, never by position.

Why it matters: CUDA numbers the GPUs a process may see (``CUDA_VISIBLE_DEVICES``,
which Ray sets per task, and ``CUDA_DEVICE_ORDER``, fastest first by default),
NVML numbers every GPU of the machine by PCI bus. A cell told ``cuda:0`` on a
Ray worker may run on the machine's third GPU; locking "GPU 0"'s clock or
reading "GPU 0"'s energy counter would then change and meter a GPU another
cell is using. Both numberings agree on one thing: each GPU's UUID.

Also here: which sweep axes change device-global settings, so an executor
can give such a cell its whole GPU (or node) to itself.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from nrg.dvfs import common
from nrg.dvfs.common import DvfsUnavailableError

if TYPE_CHECKING:
    from nrg.meters.nvml import Nvml

#: Axes whose value changes a whole physical GPU (every process on it feels it).
GPU_GLOBAL_AXES: tuple[str, ...] = ("gpu_clock_mhz", "mem_clock_mhz", "power_limit_w")
#: Axes whose value changes every CPU of the machine.
CPU_GLOBAL_AXES: tuple[str, ...] = ("cpu_max_freq_khz",)


def changes_gpu_settings(axes: Sequence[tuple[str, Any]]) -> bool:
    """True when a cell's axis values lock clocks or set a power limit (None leaves them as they are)."""
    return any(name in GPU_GLOBAL_AXES and value is not None for name, value in axes)


def changes_cpu_settings(axes: Sequence[tuple[str, Any]]) -> bool:
    """True when a cell's axis values cap the CPU frequency of the machine."""
    return any(name in CPU_GLOBAL_AXES and value is not None for name, value in axes)


def normalize_uuid(uuid: Any) -> str:
    """``b"GPU-8f3a..."`` / ``"GPU-8F3A..."`` / torch's ``8f3a...`` -> ``"8f3a..."``."""
    text = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
    text = text.strip().lower()
    return text[4:] if text.startswith("gpu-") else text


def nvml_uuids(nvml_module: Nvml | None = None) -> list[str]:
    """Every GPU's UUID in NVML's order (normalized)."""
    nvml = common.load_nvml(nvml_module)
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise DvfsUnavailableError(f"no NVML to map CUDA devices to: {exc}") from exc
    try:
        count = int(nvml.nvmlDeviceGetCount())
        return [normalize_uuid(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i)))
                for i in range(count)]
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def cuda_uuid(cuda_index: int) -> str:
    """The UUID of CUDA device ``cuda_index`` as this process numbers it (torch)."""
    import torch

    return normalize_uuid(torch.cuda.get_device_properties(cuda_index).uuid)


def nvml_index_for_cuda_device(cuda_index: int, nvml_module: Nvml | None = None,
                               cuda_uuid_of: Callable[[int], Any] | None = None) -> int:
    """NVML's index of the GPU this process calls ``cuda:<cuda_index>``.

    ``cuda_uuid_of`` defaults to torch's device properties (tests pass the
    CUDA side of a fake machine). No UUID match is an error, never a guess.
    """
    wanted = normalize_uuid((cuda_uuid_of or cuda_uuid)(cuda_index))
    uuids = nvml_uuids(nvml_module)
    if wanted in uuids:
        return uuids.index(wanted)
    raise DvfsUnavailableError(
        f"CUDA device {cuda_index} (UUID {wanted}) is not among the {len(uuids)} GPU(s) NVML sees; "
        "a MIG slice or a container that hides NVML devices cannot be metered or tuned by index")


def nvml_indices_for_cuda_devices(cuda_indices: Sequence[int], nvml_module: Nvml | None = None,
                                  cuda_uuid_of: Callable[[int], Any] | None = None) -> tuple[int, ...]:
    """:func:`nvml_index_for_cuda_device` for each index (NVML is read once)."""
    if not cuda_indices:
        return ()
    uuids = nvml_uuids(nvml_module)
    out = []
    for i in cuda_indices:
        wanted = normalize_uuid((cuda_uuid_of or cuda_uuid)(i))
        if wanted not in uuids:
            raise DvfsUnavailableError(f"CUDA device {i} (UUID {wanted}) is not among the GPUs NVML sees")
        out.append(uuids.index(wanted))
    return tuple(out)


@contextlib.contextmanager
def dvfs_target(cuda_index: int, nvml_module: Nvml | None = None,
                cuda_uuid_of: Callable[[int], Any] | None = None) -> Iterator[int]:
    """Point :mod:`nrg.dvfs` at the physical GPU behind ``cuda:<cuda_index>``; restore the target after.

    Yields the NVML index. Clock locks and power limits inside the block act
    on, and restore, that GPU, and its marker entry names it.
    """
    before = common.settings()
    index = nvml_index_for_cuda_device(cuda_index, nvml_module, cuda_uuid_of)
    kept = {f.name: getattr(before, f.name) for f in fields(before)}  # no copies: the NVML module is shared
    common.configure(**{**kept, "gpu_index": index})
    try:
        yield index
    finally:
        common.configure(**kept)
