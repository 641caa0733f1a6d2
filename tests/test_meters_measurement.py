"""Measurement: totals, family selection, net energy, weakest method, flat record."""
from __future__ import annotations

import math

import pytest

from nrg.errors import ParameterError
from nrg.meters import DomainEnergy, Measurement, Method

RECORD_COLUMNS = {"time_s", "energy_j", "net_energy_j", "gpu_energy_j", "cpu_energy_j",
                  "dram_energy_j", "idle_power_w", "energy_method", "energy_source",
                  "energy_valid", "energy_warning", "avg_power_w",
                  "other_cpu_s", "other_cpu_frac", "foreign_gpu_procs"}


def make(idle: bool = True) -> Measurement:
    return Measurement("w", 2.0, (
        DomainEnergy("gpu:0", 300.0, Method.COUNTER, "nvml-counter", 50.0 if idle else None),
        DomainEnergy("gpu:1", 100.0, Method.INTEGRATED, "nvml-sampling", 20.0 if idle else None),
        DomainEnergy("cpu", 40.0, Method.COUNTER, "rapl", 10.0 if idle else None),
    ))


def test_totals_select_domains_and_families() -> None:
    m = make()
    assert m.total_j() == pytest.approx(440.0)
    assert m.total_j(["gpu"]) == pytest.approx(400.0)
    assert m.total_j(["gpu:1", "cpu"]) == pytest.approx(140.0)
    assert m.total_j("cpu") == pytest.approx(40.0)
    # gpu and gpu:0 overlap: each domain counted once
    assert m.total_j(["gpu", "gpu:0"]) == pytest.approx(400.0)


def test_net_subtracts_idle_power_times_elapsed() -> None:
    m = make()
    assert m.net_energy_j("gpu:0") == pytest.approx(300.0 - 50.0 * 2.0)
    assert m.total_j(net=True) == pytest.approx(440.0 - (50 + 20 + 10) * 2.0)
    assert math.isnan(make(idle=False).total_j(net=True))


def test_unknown_domain_names_the_valid_ones() -> None:
    with pytest.raises(ParameterError, match=r"'dram'.*'cpu'.*'gpu:0'"):
        make().total_j(["dram"])


def test_method_is_the_weakest() -> None:
    m = make()
    assert m.method is Method.INTEGRATED
    est = Measurement("e", 1.0, (*m.domains, DomainEnergy("dram", 1.0, Method.ESTIMATED, "x")))
    assert est.method is Method.ESTIMATED
    only_counter = Measurement("c", 1.0, (m.domains[0], m.domains[2]))
    assert only_counter.method is Method.COUNTER


def test_to_record_flat_columns() -> None:
    rec = make().to_record()
    assert set(rec) == RECORD_COLUMNS | {"gpu0_energy_j", "gpu1_energy_j"}  # two GPUs: each, and the sum
    assert rec["gpu_energy_j"] == pytest.approx(400.0)
    assert rec["gpu0_energy_j"] + rec["gpu1_energy_j"] == pytest.approx(400.0)
    assert rec["cpu_energy_j"] == pytest.approx(40.0)
    assert math.isnan(rec["dram_energy_j"])
    assert rec["idle_power_w"] == pytest.approx(80.0)
    assert rec["net_energy_j"] == pytest.approx(280.0)
    assert rec["avg_power_w"] == pytest.approx(220.0)
    assert rec["energy_method"] == "integrated"
    assert rec["energy_source"] == "gpu:0=nvml-counter; gpu:1=nvml-sampling; cpu=rapl"
    assert rec["energy_valid"] is True and rec["energy_warning"] is None


def test_record_without_baseline_and_invalid() -> None:
    m = Measurement("w", 1.0, make(idle=False).domains, valid=False,
                    invalid_reason="nvml-counter: NVMLError_GpuIsLost", warnings=("short",))
    rec = m.to_record()
    assert math.isnan(rec["net_energy_j"]) and math.isnan(rec["idle_power_w"])
    assert rec["energy_valid"] is False
    assert rec["energy_warning"] == "invalid: nvml-counter: NVMLError_GpuIsLost; short"


def test_per_iteration_divides_energy_and_time() -> None:
    m = make().per_iteration(4)
    assert m.iterations == 4
    assert m.elapsed_s == pytest.approx(0.5)
    assert m.total_j() == pytest.approx(110.0)
    assert m.domains[0].idle_power_w == 50.0      # a power: unchanged
    assert m.total_j(net=True) == pytest.approx(110.0 - 80.0 * 0.5)
    with pytest.raises(ParameterError, match="iterations"):
        make().per_iteration(0)


def test_measurement_is_frozen() -> None:
    with pytest.raises(AttributeError):
        make().elapsed_s = 3.0  # type: ignore[misc]
