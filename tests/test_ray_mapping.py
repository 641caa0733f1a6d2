"""CUDA device -> NVML device by UUID, and device-global settings on the right physical GPU.

The fake machine has three GPUs whose NVML order (PCI bus) differs from CUDA's
order: a mapping by position would lock, and meter, the wrong GPU.
"""
from __future__ import annotations

import contextlib

import pytest

from nrg import dvfs
from nrg.dvfs import mapping
from nrg.dvfs.common import DvfsUnavailableError
from nrg.sweep.config import parse_config
from nrg.sweep.schedule.devices import meter_gpus

try:
    from fakes.nvml import FakeNvml as EnergyNvml
    from fakes.nvml_uuid import UuidNvml, cuda_side
except ImportError:  # tests/ collected as a package
    from tests.fakes.nvml import FakeNvml as EnergyNvml
    from tests.fakes.nvml_uuid import UuidNvml, cuda_side

NVML_ORDER = ["aaaa-0000", "bbbb-1111", "cccc-2222"]   # NVML index 0, 1, 2
CUDA_ORDER = ["cccc-2222", "aaaa-0000", "bbbb-1111"]   # what CUDA calls cuda:0, cuda:1, cuda:2


@pytest.fixture
def machine(tmp_path):
    fake = UuidNvml(NVML_ORDER)
    dvfs.configure(nvml_module=fake, marker_path=tmp_path / "marker.json", sample_interval_s=0.01)
    return fake


def test_cuda_index_maps_to_nvml_index_by_uuid_not_position(machine):
    found = [mapping.nvml_index_for_cuda_device(i, cuda_uuid_of=cuda_side(CUDA_ORDER)) for i in range(3)]
    assert found == [2, 0, 1]
    # a Ray worker that was given only the second physical GPU sees it as cuda:0
    assert mapping.nvml_index_for_cuda_device(0, cuda_uuid_of=cuda_side(["bbbb-1111"])) == 1
    assert machine.init_count == 0, "NVML shut down after the lookup"


def test_uuid_spellings_are_normalized(machine):
    assert mapping.normalize_uuid(b"GPU-CCCC-2222") == "cccc-2222"
    assert mapping.nvml_index_for_cuda_device(0, cuda_uuid_of=lambda i: "GPU-CCCC-2222") == 2


def test_unknown_uuid_is_an_error_never_a_guess(machine):
    with pytest.raises(DvfsUnavailableError, match=r"UUID dddd-3333\) is not among the 3 GPU"):
        mapping.nvml_index_for_cuda_device(0, cuda_uuid_of=cuda_side(["dddd-3333"]))


def test_dvfs_target_locks_the_physical_gpu_and_restores_the_target(machine):
    before = dvfs.settings()
    with mapping.dvfs_target(0, cuda_uuid_of=cuda_side(CUDA_ORDER)) as index:
        assert index == 2 and dvfs.settings().gpu_index == 2
        with dvfs.locked_gpu_clocks(1410):
            assert machine.locked() == [None, None, [1410, 1410]]
    assert machine.locked() == [None, None, None]
    assert dvfs.settings() == before
    assert dvfs.settings().nvml_module is machine, "the NVML module is kept, not copied"


def test_sweep_cell_on_cuda_changes_clocks_of_its_own_gpu(machine, monkeypatch):
    """The measured path: a cuda:0 cell with a clock axis locks the GPU CUDA calls 0 (NVML's 2)."""
    from nrg.workloads.cells import enter_environments

    monkeypatch.setattr(mapping, "cuda_uuid", cuda_side(CUDA_ORDER))  # torch's view of the machine
    cfg = parse_config({"models": ["gpt2"], "device": "cuda:0", "gpu_clock_mhz": [1200]})
    cell = cfg.cells()[0]
    seen = []
    with contextlib.ExitStack() as stack:
        observers = enter_environments(stack, cell)
        seen.append(machine.locked())
        assert dvfs.settings().gpu_index == 2
    assert seen == [[None, None, [1200, 1200]]]    # by position it would have been GPU 0
    assert machine.locked() == [None, None, None]
    assert dvfs.settings().gpu_index == 0 and len(observers) == 1


def test_device_global_axes_are_recognized():
    assert mapping.changes_gpu_settings([("gpu_clock_mhz", 1410)])
    assert mapping.changes_gpu_settings([("power_limit_w", 200.0), ("quant", "none")])
    assert not mapping.changes_gpu_settings([("gpu_clock_mhz", None)])
    assert not mapping.changes_gpu_settings([("quant", "int8")])
    assert mapping.changes_cpu_settings([("cpu_max_freq_khz", 2_000_000)])
    assert not mapping.changes_cpu_settings([("cpu_max_freq_khz", None)])


def test_meter_selection_follows_uuids_and_visibility():
    fake = UuidNvml(NVML_ORDER)
    # a sharded cell on cuda:0 and cuda:1 meters NVML GPUs 2 and 0
    assert meter_gpus((0, 1), visible="2,0", nvml_module=fake, cuda_uuid_of=cuda_side(CUDA_ORDER)) == [2, 0]
    # a CPU cell that may see no GPU (Ray sets CUDA_VISIBLE_DEVICES="") meters none of the node's GPUs
    assert meter_gpus((), visible="", nvml_module=fake) == []
    # a CPU cell run by hand keeps the default: every GPU NVML sees
    assert meter_gpus((), visible=None, nvml_module=fake) is None
    # no NVML: the indices do not matter, the NVML meter is skipped with its reason
    assert meter_gpus((1,), visible="1", nvml_module=EnergyNvml(present=False)) == [1]


def test_a_cell_given_no_gpu_meters_none_of_the_node():
    from nrg.meters import EnergyMonitor

    fake = UuidNvml(NVML_ORDER)
    with EnergyMonitor.auto(meters=["nvml", "estimate"], gpus=meter_gpus((), visible="", nvml_module=fake),
                            nvml_module=fake) as monitor:
        assert not any(d.startswith("gpu") for d in monitor.domains)   # cpu and the dram estimate only
    with EnergyMonitor.auto(meters=["nvml", "estimate"], gpus=meter_gpus((), visible=None, nvml_module=fake),
                            nvml_module=fake) as monitor:
        assert monitor.domains == ("gpu:0", "gpu:1", "gpu:2", "cpu", "dram")
