"""CPU estimate on real CPU work: more work, more joules; the table; children; bad options."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from nrg.errors import ParameterError
from nrg.meters import CPU_POWER_TABLE, EnergyMonitor, Method, lookup_cpu
from nrg.meters.estimate import DEFAULT_POWER_PER_CORE_W, resolve_power


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def test_more_work_more_joules() -> None:
    with EnergyMonitor.auto(meters=["estimate"], power_per_core_w=10.0) as mon:
        burn(10_000)  # warm up
        with mon.window("small") as small:
            burn(300_000)
        with mon.window("large") as large:
            burn(1_500_000)
    s, big = small.measurement, large.measurement
    assert s is not None and big is not None
    assert s.method is Method.ESTIMATED and big.method is Method.ESTIMATED
    assert s.total_j() > 0
    assert big.total_j() > 2.5 * s.total_j()     # 5x the work; CPU time is not wall time


def test_joules_are_cpu_seconds_times_watts_per_core() -> None:
    with EnergyMonitor.auto(meters=["estimate"], power_per_core_w=7.0,
                            include_children=False) as mon:
        cpu0 = time.process_time()
        with mon.window("w") as w:
            burn(500_000)
        cpu_s = time.process_time() - cpu0
    assert w.measurement is not None
    assert w.measurement.total_j() == pytest.approx(7.0 * cpu_s, rel=0.1)
    assert "user value 7 W/core" in w.measurement.domains[0].source


def test_children_cpu_time_is_counted() -> None:
    code = "t=0\nfor i in range(3_000_000): t += i % 3"
    results = {}
    for include in (True, False):
        with EnergyMonitor.auto(meters=["estimate"], power_per_core_w=1.0,
                                include_children=include) as mon:
            with mon.window("child") as w:
                subprocess.run([sys.executable, "-c", code], check=True)
        assert w.measurement is not None
        results[include] = w.measurement.total_j()
    assert results[True] > 0.1                       # the child's CPU seconds x 1 W
    assert results[True] > 3 * results[False]


def test_table_lookup_and_sources() -> None:
    epyc = lookup_cpu("AMD EPYC 7763 64-Core Processor")
    assert epyc is not None and epyc.tdp_w == 280 and epyc.cores == 64
    xeon = lookup_cpu("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz")
    assert xeon is not None and xeon.power_per_core_w == pytest.approx(270 / 40)
    assert lookup_cpu("Intel(R) Xeon(R) Platinum 8380H CPU @ 2.90GHz") is None
    assert all(e.source and e.tdp_w > 0 and e.cores > 0 for e in CPU_POWER_TABLE)
    watts, source = resolve_power("AMD EPYC 7763 64-Core Processor")
    assert watts == pytest.approx(280 / 64) and "amd.com" in source


def test_unknown_cpu_uses_the_documented_default_and_says_so() -> None:
    watts, source = resolve_power("AMD EPYC")
    assert watts == DEFAULT_POWER_PER_CORE_W
    assert "'AMD EPYC' not in the rated-power table" in source and "default" in source


def test_bad_estimate_options() -> None:
    with pytest.raises(ParameterError, match="cpu_model, power_per_core_w, include_children"):
        EnergyMonitor.auto(meters=["estimate"], power_per_core=5.0)
    for bad in (0, -1.0, True, "5"):
        with pytest.raises(ParameterError, match="power_per_core_w"):
            EnergyMonitor.auto(meters=["estimate"], power_per_core_w=bad)
    with pytest.raises(ParameterError, match="leaves out 'estimate'"):
        EnergyMonitor.auto(meters=["rapl"], power_per_core_w=5.0)


def test_live_children_are_counted_before_they_exit() -> None:
    import psutil

    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        proc = psutil.Process(child.pid)
        with EnergyMonitor.auto(meters=["estimate"], power_per_core_w=1.0) as mon:
            with mon.window("live") as w:
                deadline = time.monotonic() + 30
                while sum(proc.cpu_times()[:2]) < 0.3 and time.monotonic() < deadline:
                    time.sleep(0.05)   # however loaded the machine, wait for 0.3 CPU-s
                child_cpu_s = sum(proc.cpu_times()[:2])
            assert child.poll() is None, "the child is still running at the window's end"
    finally:
        child.kill()
        child.wait()
    assert w.measurement is not None
    assert child_cpu_s >= 0.3
    # the child's CPU seconds x 1 W, at least (the window also holds this process's own)
    assert w.measurement.total_j() >= 0.9 * child_cpu_s
