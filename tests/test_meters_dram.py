"""DRAM estimate: codecarbon's RAM rule by hand and against codecarbon, and the dram domain in a window."""
from __future__ import annotations

import time

import pytest

from nrg.errors import ParameterError
from nrg.meters import EnergyMonitor, Method
from nrg.meters.dram import DIMM_POWER_X86_W, dimm_count, ram_power_w, resolve_dram_power

# (GB, DIMMs, watts) worked by hand from codecarbon's rule: full W per DIMM for 4,
# 90 % for the next 4, 80 % for the next 8, 70 % beyond; at least 2 x86 DIMMs' worth.
X86 = [(1.0, 1, 10.0), (8.0, 2, 10.0), (16.0, 2, 10.0), (23.5, 4, 20.0), (64.0, 4, 20.0),
       (96.0, 8, 20.0 + 4 * 4.5), (256.0, 8, 38.0), (2048.0, 16, 38.0 + 8 * 4.0),
       (8192.0, 32, 38.0 + 32.0 + 16 * 3.5)]


@pytest.mark.parametrize("memory_gb, dimms, watts", X86)
def test_dimm_rule_by_hand(memory_gb: float, dimms: int, watts: float) -> None:
    assert dimm_count(memory_gb) == dimms
    assert ram_power_w(memory_gb) == pytest.approx(watts)


def test_arm_uses_the_lower_per_dimm_figure() -> None:
    assert ram_power_w(8.0, arm=True) == pytest.approx(3.0)       # 2 x 1.5 W, the ARM floor
    assert ram_power_w(64.0, arm=True) == pytest.approx(6.0)      # 4 x 1.5 W


def test_rule_matches_codecarbons_ram_class() -> None:
    from codecarbon.external.ram import RAM, RAM_SLOT_POWER_X86

    assert DIMM_POWER_X86_W == RAM_SLOT_POWER_X86
    theirs = RAM()
    for arm in (False, True):
        theirs.is_arm_cpu = arm
        for memory_gb in (0.5, 2, 3, 4.5, 12, 17, 31.9, 48, 100, 129, 300, 700, 1500, 4000, 20000):
            assert ram_power_w(memory_gb, arm) == pytest.approx(theirs._calculate_ram_power(memory_gb)), memory_gb


def test_dram_domain_is_power_times_wall_time_and_idle_cancels_it() -> None:
    with EnergyMonitor.auto(meters=["estimate"], dram_power_w=12.0) as mon:
        dram = next(d for d in mon.decisions if d.domain == "dram")
        assert dram.chosen == "estimate-dram" and dram.method is Method.ESTIMATED
        with mon.window("w") as w:
            time.sleep(0.2)
        idle = mon.measure_idle(0.3)
        with mon.window("after idle") as w2:
            time.sleep(0.1)
    m = w.measurement
    assert m is not None and m.valid
    # the DRAM clock is read a few ms after the window's (the CPU source reads first): jitter, no bias
    assert m.total_j("dram") == pytest.approx(12.0 * m.elapsed_s, rel=0.05)
    record = m.to_record()
    assert record["dram_energy_j"] == pytest.approx(m.total_j("dram"))
    assert record["energy_j"] == pytest.approx(record["cpu_energy_j"] + record["dram_energy_j"])
    assert "dram=estimate-dram: user value 12 W" in record["energy_source"]
    assert record["energy_method"] == "estimated"
    assert idle["dram"] == pytest.approx(12.0, rel=0.05)
    assert w2.measurement is not None
    assert w2.measurement.net_energy_j("dram") == pytest.approx(0.0, abs=0.1)   # a constant cancels


def test_default_is_this_machines_memory_by_the_rule() -> None:
    import psutil

    memory_gb = psutil.virtual_memory().total / 1024**3
    watts, source = resolve_dram_power()
    assert watts == ram_power_w(memory_gb)
    assert f"{memory_gb:.1f} GB as {dimm_count(memory_gb)} DIMMs" in source and "RAM rule" in source


def test_bad_dram_power() -> None:
    for bad in (-0.5, True, "3", float("nan")):
        with pytest.raises(ParameterError, match="dram_power_w"):
            resolve_dram_power(bad)  # type: ignore[arg-type]
