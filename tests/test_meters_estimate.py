"""CPU estimate on real CPU work: more work, more joules; codecarbon's CPU table; children; bad options."""
from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nrg.errors import ParameterError
from nrg.meters import EnergyMonitor, Method, cpu_model_name, lookup_cpu
from nrg.meters.estimate import DEFAULT_POWER_PER_CORE_W, match_cpu_name, resolve_power


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
    assert s.total_j("cpu") > 0
    assert big.total_j("cpu") > 2.5 * s.total_j("cpu")     # 5x the work; CPU time is not wall time


def test_joules_are_cpu_seconds_times_watts_per_core() -> None:
    with EnergyMonitor.auto(meters=["estimate"], power_per_core_w=7.0,
                            include_children=False) as mon:
        cpu0 = time.process_time()
        with mon.window("w") as w:
            burn(500_000)
        cpu_s = time.process_time() - cpu0
    assert w.measurement is not None
    assert w.measurement.total_j("cpu") == pytest.approx(7.0 * cpu_s, rel=0.1)
    assert "user value 7 W/core" in w.measurement.domains[0].source


@pytest.mark.process
def test_children_cpu_time_is_counted() -> None:
    code = "t=0\nfor i in range(3_000_000): t += i % 3"
    results = {}
    for include in (True, False):
        with EnergyMonitor.auto(meters=["estimate"], power_per_core_w=1.0,
                                include_children=include) as mon, mon.window("child") as w:
            subprocess.run([sys.executable, "-c", code], check=True)
        assert w.measurement is not None
        results[include] = w.measurement.total_j("cpu")
    assert results[True] > 0.1                       # the child's CPU seconds x 1 W
    assert results[True] > 3 * results[False]


def codecarbon_dir() -> Path:
    spec = importlib.util.find_spec("codecarbon")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


def cpu_table() -> dict[str, str]:
    """codecarbon's CPU power table, read here independently of nrg (name -> TDP text)."""
    path = codecarbon_dir() / "data" / "hardware" / "cpu_power.csv"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {row["Name"]: row["TDP"] for row in csv.DictReader(handle)}


def fake_cpuinfo(tmp_path: Path, model: str, cores: int = 2, vm: bool = True) -> Path:
    """/proc/cpuinfo as Linux writes it: one block per logical CPU."""
    flags = "fpu vme sse sse2 avx2" + (" hypervisor" if vm else "")
    block = (f"processor\t: {{n}}\nvendor_id\t: X\nmodel name\t: {model}\nflags\t\t: {flags}\n"
             f"siblings\t: {cores}\ncpu cores\t: {cores}\n\n")
    path = tmp_path / f"cpuinfo-{cores}-{vm}"
    path.write_text("".join(block.format(n=n) for n in range(cores)))
    return path


def test_rated_power_comes_from_codecarbons_table(tmp_path: Path) -> None:
    table = cpu_table()
    info = fake_cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor")     # a VM: cores from the name
    assert cpu_model_name(info) == "AMD EPYC 7763 64-Core Processor"
    watts, source = resolve_power(cpuinfo=info)
    assert watts == pytest.approx(float(table["AMD EPYC 7763"]) / 64)
    assert "AMD EPYC 7763" in source and "cpu_power.csv" in source and "64 cores (the model name)" in source
    epyc = lookup_cpu("AMD EPYC 7763 64-Core Processor", info)
    assert epyc is not None and epyc.cores == 64 and epyc.tdp_w == float(table["AMD EPYC 7763"])


def test_intel_cores_from_cpuinfo_on_bare_metal_only(tmp_path: Path) -> None:
    name = "Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz"
    tdp_w = float(cpu_table()["Intel Xeon Platinum 8380"])
    bare = fake_cpuinfo(tmp_path, name, cores=40, vm=False)
    watts, source = resolve_power(cpuinfo=bare)
    assert watts == pytest.approx(tdp_w / 40) and "'cpu cores' in" in source
    vm = fake_cpuinfo(tmp_path, name, cores=4, vm=True)          # 4 vCPUs say nothing of the chip
    watts, source = resolve_power(cpuinfo=vm)
    assert watts == DEFAULT_POWER_PER_CORE_W
    assert f"rated {tdp_w:g} W" in source and "core count is unknown" in source and "virtual machine" in source
    # a model named by the user (another machine): this machine's cpuinfo is not consulted
    watts, source = resolve_power(cpu_model=name, cpuinfo=bare)
    assert watts == DEFAULT_POWER_PER_CORE_W and "not in the model name given" in source


def test_matching_agrees_with_codecarbons_own_matcher() -> None:
    from codecarbon.core.cpu import TDP
    from codecarbon.input import DataSource

    frame = DataSource().get_cpu_power_data()
    theirs = TDP.__new__(TDP)                      # no hardware detection: just its matcher
    names = tuple(cpu_table())
    for raw in ("AMD EPYC", "AMD EPYC 7763 64-Core Processor", "Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz",
                "Intel(R) Xeon(R) Platinum 8380H CPU @ 2.90GHz", "13th Gen Intel(R) Core(TM) i9-13900K",
                "AMD Ryzen 9 7950X 16-Core Processor", "Intel(R) Core(TM) i7-10700 CPU @ 2.90GHz",
                "Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", "Apple M2", "AMD EPYC 9654 96-Core Processor"):
        assert match_cpu_name(raw, names) == theirs._get_matching_cpu(raw, frame), raw


def test_unknown_cpu_uses_codecarbons_default_and_says_so(tmp_path: Path) -> None:
    from codecarbon.core.cpu import DEFAULT_POWER_PER_CORE

    assert DEFAULT_POWER_PER_CORE_W == DEFAULT_POWER_PER_CORE
    info = fake_cpuinfo(tmp_path, "AMD EPYC")            # what this VM reports: no model number
    assert lookup_cpu("AMD EPYC", info) is None          # every EPYC matches: codecarbon picks none
    watts, source = resolve_power(cpuinfo=info)
    assert watts == DEFAULT_POWER_PER_CORE_W
    assert "'AMD EPYC' not in codecarbon's CPU power table" in source
    assert "codecarbon.core.cpu.DEFAULT_POWER_PER_CORE" in source


def test_bad_estimate_options() -> None:
    with pytest.raises(ParameterError, match="cpu_model, power_per_core_w, include_children, dram_power_w"):
        EnergyMonitor.auto(meters=["estimate"], power_per_core=5.0)
    for bad in (0, -1.0, True, "5"):
        with pytest.raises(ParameterError, match="power_per_core_w"):
            EnergyMonitor.auto(meters=["estimate"], power_per_core_w=bad)
    for bad in (-1.0, True, "5"):
        with pytest.raises(ParameterError, match="dram_power_w"):
            EnergyMonitor.auto(meters=["estimate"], dram_power_w=bad)
    with pytest.raises(ParameterError, match="leaves out 'estimate'"):
        EnergyMonitor.auto(meters=["rapl"], power_per_core_w=5.0)


@pytest.mark.process
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
    assert w.measurement.total_j("cpu") >= 0.9 * child_cpu_s
