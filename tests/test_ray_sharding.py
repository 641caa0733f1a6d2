"""Sharded models (``device: auto`` / ``devices``): config, placement, metering on each GPU, roofline.

No CUDA here: the device-map decision runs on a meta-device model with an
explicit memory budget per GPU, and the meters read a fake NVML with two GPUs.
"""
from __future__ import annotations

import time

import pytest

from nrg.errors import ParameterError
from nrg.meters import EnergyMonitor
from nrg.models import ModelSpec, check_device_support, placement
from nrg.sweep import roofline
from nrg.sweep.check import check
from nrg.sweep.config import Settings, parse_config
from nrg.sweep.schedule.devices import meter_gpus

try:
    from fakes.nvml_uuid import UuidNvml, cuda_side
except ImportError:  # tests/ collected as a package
    from tests.fakes.nvml_uuid import UuidNvml, cuda_side


def _meta_gpt2(layers: int = 4):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_layer=layers, n_embd=64, n_head=4, vocab_size=1000, n_positions=128,
                     bos_token_id=0, eos_token_id=0)
    with torch.device("meta"):
        return GPT2LMHeadModel(cfg)


# ---------------------------------------------------------------- config and spec


def test_devices_key_means_a_sharded_model_and_is_part_of_the_cell():
    cfg = parse_config({"models": ["gpt2"], "devices": [0, 1]})
    cell = cfg.cells()[0]
    assert cell.settings.device == "auto" and cell.settings.devices == (0, 1)
    assert cell.factors()["devices"] == "0,1"
    other = parse_config({"models": ["gpt2"], "device": "auto", "devices": [1, 0]}).cells()[0]
    assert other.cell_id != cell.cell_id
    assert parse_config(cfg.to_dict()).cells()[0].cell_id == cell.cell_id


def test_cell_ids_without_devices_keep_their_old_hash_input():
    assert "devices" not in Settings().to_dict()
    assert "devices" not in parse_config({"models": ["gpt2"]}).cells()[0].factors()


@pytest.mark.parametrize("raw, match", [
    ({"device": "cpu", "devices": [0]}, r"devices=\[0\] is only valid with device='auto'"),
    ({"devices": [0, 0]}, "lists 0 twice"),
    ({"devices": [-1]}, "integer >= 0"),
    ({"device": "gpu"}, "'cpu', 'cuda', 'cuda:N' .*'auto'"),
])
def test_bad_devices_are_refused(raw, match):
    with pytest.raises(ParameterError, match=match):
        parse_config({"models": ["gpt2"], **raw})


def test_spec_accepts_auto_and_refuses_devices_on_one_device():
    assert ModelSpec("gpt2", device="auto", devices=(0, 1)).devices == (0, 1)
    with pytest.raises(ParameterError, match=r"devices=.* only valid with device='auto'"):
        ModelSpec("gpt2", device="cuda", devices=(0,))


def test_sharding_needs_cuda_checked_before_loading():
    with pytest.raises(ParameterError, match="device='auto' shards the model over GPUs, but CUDA is not available"):
        check_device_support(ModelSpec("gpt2", device="auto"))
    with pytest.raises(ParameterError, match="CUDA is not available"):
        check(parse_config({"models": [{"name": "gpt2", "weights": "random", "tiny": True}],
                            "devices": [0, 1]}))


def test_clock_axes_refused_for_a_sharded_model():
    with pytest.raises(ParameterError, match=r"gpu_clock_mhz=.* not valid with device='auto'"):
        check(parse_config({"models": ["gpt2"], "devices": [0, 1], "gpu_clock_mhz": [1410],
                                  "allow_hardware_settings": True}))


# ---------------------------------------------------------------- placement


def test_cuda_indices_of_each_device_kind():
    assert placement.cuda_indices("cpu") == ()
    assert placement.cuda_indices("cuda:3") == (3,)
    assert placement.cuda_indices("cuda", current=lambda: 2) == (2,)
    assert placement.cuda_indices("auto", (1, 0)) == (1, 0)
    assert placement.cuda_indices("auto", None, device_count=lambda: 3) == (0, 1, 2)


def test_balanced_map_spreads_the_layers_over_every_gpu():
    model = _meta_gpt2(layers=4)
    size = sum(p.numel() * 4 for p in model.parameters())
    device_map = placement.balanced_device_map(model, {0: 10 * size, 1: 10 * size})
    assert placement.occupied_devices(device_map) == (0, 1)
    assert device_map["transformer.wte"] == 0 and device_map["transformer.ln_f"] == 1
    blocks = [device_map[f"transformer.h.{i}"] for i in range(4)]
    assert blocks == sorted(blocks), "layers stay in order: GPU 0 first, then GPU 1"


def test_a_model_too_big_for_the_gpus_is_refused_not_offloaded():
    model = _meta_gpt2(layers=4)
    size = sum(p.numel() * 4 for p in model.parameters())
    with pytest.raises(ParameterError, match=r"does not fit on GPUs \[0, 1\].*offload"):
        placement.balanced_device_map(model, {0: size // 4, 1: size // 4})
    with pytest.raises(ParameterError, match="at least one GPU"):
        placement.balanced_device_map(model, {})


def test_occupied_devices_reads_any_spelling():
    assert placement.occupied_devices({"a": 1, "b": "cuda:0", "c": 1}) == (0, 1)


# ---------------------------------------------------------------- metering every GPU


def test_sharded_cell_is_metered_on_each_gpu_and_in_total():
    nvml_order = ["aaaa", "bbbb"]
    fake = UuidNvml(nvml_order, power_mw=[100_000, 300_000])
    gpus = meter_gpus((0, 1), visible="1,0", nvml_module=fake, cuda_uuid_of=cuda_side(["bbbb", "aaaa"]))
    assert gpus == [1, 0]
    with EnergyMonitor.auto(meters=["nvml"], gpus=gpus, nvml_module=fake) as monitor, monitor.window("w") as w:
        time.sleep(0.2)
    assert w.measurement is not None
    record = w.measurement.to_record()
    assert record["gpu0_energy_j"] == pytest.approx(100.0 * record["time_s"], rel=0.15)
    assert record["gpu1_energy_j"] == pytest.approx(300.0 * record["time_s"], rel=0.15)
    assert record["gpu_energy_j"] == pytest.approx(record["gpu0_energy_j"] + record["gpu1_energy_j"])


def test_one_gpu_keeps_the_old_columns():
    fake = UuidNvml(["aaaa", "bbbb"])
    with EnergyMonitor.auto(meters=["nvml"], gpus=[1], nvml_module=fake) as monitor, monitor.window("w") as w:
        time.sleep(0.05)
    assert w.measurement is not None
    record = w.measurement.to_record()
    assert not [k for k in record if k.startswith("gpu") and k[3:4].isdigit()]
    assert record["gpu_energy_j"] > 0


# ---------------------------------------------------------------- roofline


def test_roofline_of_a_sharded_model_uses_the_summed_bandwidth():
    h100 = roofline.cuda_peaks("NVIDIA H100 80GB HBM3", "bfloat16")
    assert h100 is not None
    both = roofline.aggregate_peaks([h100, h100])
    assert both is not None
    assert both.mem_bandwidth_bytes_per_s == pytest.approx(2 * h100.mem_bandwidth_bytes_per_s)
    assert both.compute_flops == pytest.approx(2 * h100.compute_flops)
    assert both.source.startswith("2 GPUs summed")
    shape = roofline.ModelShape(matmul_params=7_000_000_000, weight_bytes=14_000_000_000, kv_bytes_per_token=0)
    one = roofline.decode_bound_s(shape, h100, 1, 128, 33)
    two = roofline.decode_bound_s(shape, both, 1, 128, 33)
    assert two == pytest.approx(one / 2)          # decode is memory-bound: twice the bandwidth
    assert roofline.aggregate_peaks([h100]) is h100
    assert roofline.aggregate_peaks([h100, None]) is None, "an unknown GPU: no bound rather than a wrong one"
