"""The fallback chain across meters, monitor windows, and bad input."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from fakes.nvml import FakeGpu, FakeNvml
from fakes.sysfs import FakePowercap
from nrg.errors import ParameterError
from nrg.meters import CHAIN, EnergyMonitor, Method, NoEnergySourceError, choose_sources


def test_chain_is_data() -> None:
    assert CHAIN == {"gpu": ("nvml-counter", "nvml-sampling"), "cpu": ("rapl", "estimate"),
                     "dram": ("rapl", "estimate-dram")}


def test_best_source_per_domain_with_everything_present(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    pkg = tree.add_package(0)
    tree.add_dram(0)
    fake = FakeNvml([FakeGpu(power_mw=100_000), FakeGpu(counter_supported=False)])
    with EnergyMonitor.auto(sysfs_root=tmp_path, nvml_module=fake, sample_period_s=0.01) as mon:
        table = {d.domain: (d.chosen, d.method, [s for s, _ in d.skipped]) for d in mon.decisions}
        assert table == {
            "gpu:0": ("nvml-counter", Method.COUNTER, []),
            "gpu:1": ("nvml-sampling", Method.INTEGRATED, ["nvml-counter"]),
            "cpu": ("rapl", Method.COUNTER, []),
            "dram": ("rapl", Method.COUNTER, []),
        }
        with mon.window("w") as w:
            tree.advance(pkg, 2_000_000)
            time.sleep(0.05)
    m = w.measurement
    assert m is not None and m.valid
    assert m.domain_names() == ("gpu:0", "gpu:1", "cpu", "dram")
    assert m.method is Method.INTEGRATED                 # the weakest of the four
    assert m.total_j("cpu") == pytest.approx(2.0)
    assert fake.init_count == 0


def test_this_kind_of_machine_no_gpu_no_rapl(tmp_path: Path) -> None:
    chain = choose_sources(sysfs_root=tmp_path, nvml_module=FakeNvml(present=False))
    try:
        text = "\n".join(d.describe() for d in chain.decisions)
        assert "gpu: not measured" in text and "NVML library not found" in text
        assert "/sys/class/powercap absent" in text
        assert "cpu: estimate" in text and "[estimated]" in text
        assert "dram: estimate-dram" in text and "RAM rule" in text   # codecarbon's DIMM rule
        assert [s.name for s in chain.sources] == ["estimate", "estimate-dram"]
    finally:
        for release in chain.releases:
            release()


def test_excluded_meters_are_reported_as_not_selected(tmp_path: Path) -> None:
    fake = FakeNvml([FakeGpu()])
    with EnergyMonitor.auto(meters="estimate", sysfs_root=tmp_path, nvml_module=fake) as mon:
        cpu = next(d for d in mon.decisions if d.domain == "cpu")
        assert cpu.skipped == (("rapl", "not selected (meters=estimate)"),)
        gpu = next(d for d in mon.decisions if d.domain == "gpu")
        assert gpu.chosen is None
    assert fake.init_count == 0 and fake.shutdown_count == 0, "NVML never touched"


def test_no_source_at_all(tmp_path: Path) -> None:
    with pytest.raises(NoEnergySourceError, match="NVML library not found"):
        EnergyMonitor.auto(meters=["nvml", "rapl"], sysfs_root=tmp_path,
                           nvml_module=FakeNvml(present=False))


def test_unknown_meter_names_the_valid_ones() -> None:
    with pytest.raises(ParameterError, match="'nvml', 'rapl', 'estimate'"):
        EnergyMonitor.auto(meters=["nvml", "ipmi"])
    with pytest.raises(ParameterError, match="meters"):
        EnergyMonitor.auto(meters=[])


def test_window_bookkeeping_errors(tmp_path: Path) -> None:
    with EnergyMonitor.auto(meters=["estimate"]) as mon:
        mon.begin_window("a")
        with pytest.raises(ParameterError, match="already open"):
            mon.begin_window("a")
        with pytest.raises(ParameterError, match="'b' is not open; open windows: 'a'"):
            mon.end_window("b")
        mon.end_window("a")
        with pytest.raises(ParameterError, match="duration_s"):
            mon.measure_idle(0)
        with pytest.raises(ParameterError, match="duration_s"):
            mon.measure_idle(-1.0)
        with pytest.raises(ValueError, match="boom"), mon.window("fails") as w:
            raise ValueError("boom")
        assert mon.open_windows == () and w.measurement is not None
    with pytest.raises(RuntimeError, match="closed"):
        mon.begin_window("late")


def test_repeat_bad_parameters() -> None:
    from nrg.meters import repeat_until

    with EnergyMonitor.auto(meters=["estimate"]) as mon:
        for kw in ({"min_duration_s": 0}, {"min_iterations": 0},
                   {"min_iterations": 3, "max_iterations": 2}):
            with pytest.raises(ParameterError):
                repeat_until(mon, lambda: None, **kw)  # type: ignore[arg-type]
        m = repeat_until(mon, lambda: None, min_duration_s=0.01, max_iterations=10)
        assert m.iterations == 10


def test_baseline_measured_elsewhere_can_be_set() -> None:
    with EnergyMonitor.auto(meters=["estimate"], power_per_core_w=5.0) as mon:
        mon.set_idle_baseline({"cpu": 2.0})
        with mon.window("w") as w:
            time.sleep(0.05)
        for bad in ({"gpu:0": 1.0}, {"cpu": -1.0}, {"cpu": "2"}):
            with pytest.raises(ParameterError):
                mon.set_idle_baseline(bad)  # type: ignore[arg-type]
    m = w.measurement
    assert m is not None and m.domains[0].idle_power_w == 2.0
    assert m.net_energy_j("cpu") == pytest.approx(m.total_j("cpu") - 2.0 * m.elapsed_s)
