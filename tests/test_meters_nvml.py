"""NVML sources against a fake pynvml: counter, sampling fallback, errors, windows, idle."""
from __future__ import annotations

import threading
import time

import pytest

from fakes.nvml import FakeGpu, FakeNvml
from nrg.errors import ParameterError
from nrg.meters import EnergyMonitor, Method, repeat_until


def monitor(fake: FakeNvml, **kw: object) -> EnergyMonitor:
    return EnergyMonitor.auto(meters=["nvml"], nvml_module=fake, sample_period_s=0.01, **kw)


def sampling_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "nrg-nvml-sampling"]


def test_counter_window_reads_power_times_time() -> None:
    fake = FakeNvml([FakeGpu(power_mw=100_000), FakeGpu(power_mw=50_000)])
    with monitor(fake) as mon:
        assert [(d.domain, d.chosen) for d in mon.decisions] == [
            ("gpu:0", "nvml-counter"), ("gpu:1", "nvml-counter"), ("cpu", None), ("dram", None)]
        with mon.window("w") as w:
            time.sleep(0.2)
    m = w.measurement
    assert m is not None and m.valid and not m.warnings
    assert m.method is Method.COUNTER
    e = {d.domain: d.energy_j for d in m.domains}
    # tolerance: the monitor's clock and the device's reading are microseconds apart,
    # more on a loaded machine
    assert e["gpu:0"] == pytest.approx(100.0 * m.elapsed_s, rel=0.1)
    assert e["gpu:1"] == pytest.approx(50.0 * m.elapsed_s, rel=0.1)
    assert e["gpu:0"] == pytest.approx(2 * e["gpu:1"], rel=0.1)
    assert m.to_record()["gpu_energy_j"] == pytest.approx(e["gpu:0"] + e["gpu:1"])
    assert fake.init_count == 0, "nvmlShutdown after close"


def test_unsupported_counter_falls_back_to_sampling() -> None:
    fake = FakeNvml([FakeGpu(power_mw=80_000, counter_supported=False)])
    with monitor(fake) as mon:
        (gpu,) = [d for d in mon.decisions if d.domain == "gpu:0"]
        assert gpu.chosen == "nvml-sampling" and gpu.method is Method.INTEGRATED
        assert gpu.skipped[0][0] == "nvml-counter" and "not supported" in gpu.skipped[0][1]
        assert len(sampling_threads()) == 1
        with mon.window("w") as w:
            t0 = time.perf_counter()
            time.sleep(0.1)
            t_switch = time.perf_counter()
            fake.set_power(0, 200_000)
            time.sleep(0.1)
            t1 = time.perf_counter()
    assert not sampling_threads(), "closing the monitor stops the sampling thread"
    m = w.measurement
    assert m is not None and m.valid and m.method is Method.INTEGRATED
    # 80 W then 200 W: the integral follows the change (to within a 10 ms sample)
    expected_j = 80.0 * (t_switch - t0) + 200.0 * (t1 - t_switch)
    assert m.total_j() == pytest.approx(expected_j, rel=0.15)
    assert 80.0 * m.elapsed_s < m.total_j() < 200.0 * m.elapsed_s


def test_mixed_gpus_choose_per_domain() -> None:
    fake = FakeNvml([FakeGpu(), FakeGpu(counter_supported=False)])
    with monitor(fake) as mon:
        chosen = {d.domain: d.chosen for d in mon.decisions}
        assert chosen["gpu:0"] == "nvml-counter" and chosen["gpu:1"] == "nvml-sampling"
        with mon.window("w") as w:
            time.sleep(0.05)
    assert w.measurement is not None and w.measurement.method is Method.INTEGRATED


def test_counter_error_in_window_marks_it_invalid_and_next_is_valid() -> None:
    fake = FakeNvml([FakeGpu(), FakeGpu()])
    with monitor(fake) as mon:
        mon.begin_window("bad")
        fake.fail_next(1)
        bad = mon.end_window("bad")
        with mon.window("good") as good:
            time.sleep(0.01)
    assert not bad.valid
    assert "gpu:1" in (bad.invalid_reason or "") and "GpuIsLost" in (bad.invalid_reason or "")
    assert bad.to_record()["energy_valid"] is False
    assert good.measurement is not None and good.measurement.valid


def test_sampling_error_mid_window_marks_only_that_window_invalid() -> None:
    fake = FakeNvml([FakeGpu(counter_supported=False)])
    with monitor(fake) as mon:
        mon.begin_window("bad")
        fake.fail_next(0, count=2)
        time.sleep(0.1)                   # the sampling thread meets the errors
        bad = mon.end_window("bad")
        with mon.window("good") as good:
            time.sleep(0.05)
    assert not bad.valid and "power sample" in (bad.invalid_reason or "")
    assert good.measurement is not None and good.measurement.valid
    assert good.measurement.total_j() == pytest.approx(100.0 * good.measurement.elapsed_s, rel=0.1)


def test_overlapping_windows_each_get_their_own_energy() -> None:
    fake = FakeNvml([FakeGpu(power_mw=100_000)])
    with monitor(fake) as mon:
        mon.begin_window("outer")
        time.sleep(0.05)
        mon.begin_window("inner")
        time.sleep(0.1)
        outer = mon.end_window("outer")
        time.sleep(0.05)
        inner = mon.end_window("inner")
    for m in (outer, inner):
        assert m.valid and m.total_j() == pytest.approx(100.0 * m.elapsed_s, rel=0.1)
    assert outer.elapsed_s == pytest.approx(0.15, abs=0.05)
    assert inner.elapsed_s == pytest.approx(0.15, abs=0.05)


def test_short_window_is_flagged_not_a_silent_zero() -> None:
    fake = FakeNvml([FakeGpu(counter_update_s=0.1)])
    with monitor(fake) as mon:
        with mon.window("tiny") as w:
            pass
        per_iter = repeat_until(mon, lambda: time.sleep(0.01), min_duration_s=0.3,
                                min_iterations=5)
    tiny = w.measurement
    assert tiny is not None and any("shorter than the nvml-counter update period" in x
                                    for x in tiny.warnings)
    assert "update period" in (tiny.to_record()["energy_warning"] or "")
    assert per_iter.iterations >= 5 and not per_iter.warnings
    # per iteration: ~100 W x (its share of the window), despite the 0.1 s counter steps
    assert per_iter.total_j() == pytest.approx(100.0 * per_iter.elapsed_s, rel=0.4)
    assert per_iter.total_j() > 0


def test_sync_hook_runs_before_each_reading() -> None:
    calls: list[float] = []
    fake = FakeNvml([FakeGpu()])
    with monitor(fake, sync=lambda: calls.append(time.perf_counter())) as mon:
        with mon.window("w"):
            pass
        assert len(calls) == 2
    with pytest.raises(ParameterError, match="sync"):
        EnergyMonitor.auto(meters=["nvml"], nvml_module=fake, sync="torch")  # type: ignore[arg-type]


def test_idle_baseline_gives_net_energy() -> None:
    fake = FakeNvml([FakeGpu(power_mw=60_000)])
    with monitor(fake) as mon:
        idle = mon.measure_idle(0.1)
        assert idle["gpu:0"] == pytest.approx(60.0, rel=0.1)
        fake.set_power(0, 160_000)
        with mon.window("w") as w:
            time.sleep(0.15)
    m = w.measurement
    assert m is not None
    rec = m.to_record()
    assert rec["idle_power_w"] == pytest.approx(idle["gpu:0"])
    assert rec["energy_j"] == pytest.approx(160.0 * m.elapsed_s, rel=0.1)
    assert rec["net_energy_j"] == pytest.approx(rec["energy_j"] - idle["gpu:0"] * m.elapsed_s)
    assert rec["net_energy_j"] == pytest.approx(100.0 * m.elapsed_s, rel=0.2)


def test_gpu_index_that_does_not_exist() -> None:
    fake = FakeNvml([FakeGpu(), FakeGpu()])
    with pytest.raises(ParameterError, match=r"GPU 5 does not exist; valid indices: 0, 1"):
        EnergyMonitor.auto(meters=["nvml"], gpus=[5], nvml_module=fake)
    assert fake.init_count == 0, "NVML released after the refusal"
    for bad in ([-1], ["0"], [0, 0], "0"):
        with pytest.raises(ParameterError, match="gpus"):
            EnergyMonitor.auto(meters=["nvml"], gpus=bad, nvml_module=fake)  # type: ignore[arg-type]


def test_chosen_gpu_subset() -> None:
    fake = FakeNvml([FakeGpu(), FakeGpu(), FakeGpu()])
    with monitor(fake, gpus=[2]) as mon:
        assert mon.domains == ("gpu:2",)


def test_no_nvml_library_is_a_reason_not_a_crash() -> None:
    fake = FakeNvml([FakeGpu()], present=False)
    with EnergyMonitor.auto(meters=["nvml", "estimate"], nvml_module=fake) as mon:
        (gpu,) = [d for d in mon.decisions if d.domain == "gpu"]
        assert gpu.chosen is None
        assert all("NVML library not found" in why for _, why in gpu.skipped)
        assert mon.domains == ("cpu", "dram")


def test_sampling_integrates_with_the_trapezoid_rule() -> None:
    from nrg.meters import NvmlSamplingSource

    now = [0.0]
    fake = FakeNvml([FakeGpu(power_mw=100_000)])
    fake.nvmlInit()
    source = NvmlSamplingSource(fake, {0: 0}, sample_period_s=1.0, clock=lambda: now[0])
    source.sample()                                  # t = 0 s, 100 W
    now[0] = 1.0
    fake.set_power(0, 300_000)
    assert source.read_j() == {"gpu:0": pytest.approx(200.0)}   # (100 + 300) / 2 x 1 s
    now[0] = 3.0
    assert source.read_j() == {"gpu:0": pytest.approx(800.0)}   # + 300 W x 2 s
