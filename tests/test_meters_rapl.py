"""RAPL against a fake powercap tree: packages, DRAM, wrap-around, unreadable counters."""
from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import pytest

from fakes.sysfs import MAX_RANGE_UJ, FakePowercap
from nrg.meters import EnergyMonitor, Method
from nrg.meters.rapl import probe_rapl


def rapl_monitor(root: Path, meters: tuple[str, ...] = ("rapl",)) -> EnergyMonitor:
    return EnergyMonitor.auto(meters=list(meters), sysfs_root=root)


def test_package_and_dram_counters(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    pkg = tree.add_package(0, energy_uj=1_000_000)
    dram = tree.add_dram(0, energy_uj=500)
    with rapl_monitor(tmp_path) as mon:
        assert {d.domain: d.chosen for d in mon.decisions} == {
            "gpu": None, "cpu": "rapl", "dram": "rapl"}
        mon.begin_window("w")
        tree.advance(pkg, 12_500_000)
        tree.advance(dram, 3_000_000)
        m = mon.end_window("w")
    assert m.valid and m.method is Method.COUNTER
    assert m.total_j("cpu") == pytest.approx(12.5)
    assert m.total_j("dram") == pytest.approx(3.0)
    rec = m.to_record()
    assert rec["cpu_energy_j"] == pytest.approx(12.5) and rec["dram_energy_j"] == pytest.approx(3.0)
    assert "rapl" in rec["energy_source"]


def test_packages_are_summed_and_other_zones_ignored(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    p0, p1 = tree.add_package(0), tree.add_package(1)
    core = tree.add_zone("intel-rapl:0:0", "core")
    psys = tree.add_zone("intel-rapl:2", "psys")
    mmio = tree.add_zone("intel-rapl-mmio:0", "package-0")
    with rapl_monitor(tmp_path) as mon:
        mon.begin_window("w")
        for zone, uj in ((p0, 1_000_000), (p1, 2_000_000), (core, 7_000_000),
                         (psys, 9_000_000), (mmio, 5_000_000)):
            tree.advance(zone, uj)
        m = mon.end_window("w")
    assert m.total_j("cpu") == pytest.approx(3.0)   # packages only: no core, psys, mmio twice


def test_wrap_around_is_unrolled(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    pkg = tree.add_package(0, energy_uj=MAX_RANGE_UJ - 2_000_000)
    with rapl_monitor(tmp_path) as mon:
        mon.begin_window("w")
        tree.advance(pkg, 5_000_000)                  # crosses the wrap
        assert tree.energy_uj(pkg) == 3_000_000
        m = mon.end_window("w")
    assert m.valid and m.total_j("cpu") == pytest.approx(5.0)


def test_poll_thread_catches_wraps_inside_a_long_window(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    pkg = tree.add_package(0, energy_uj=0)
    probe = probe_rapl(tmp_path, poll_s=0.01)
    assert probe.build is not None
    with EnergyMonitor([probe.build("rapl", ("cpu",))]) as mon:
        mon.begin_window("long")
        for value in (MAX_RANGE_UJ - 10, 5, MAX_RANGE_UJ - 10, 5):   # two full wraps
            tree.set_energy(pkg, value)
            time.sleep(0.06)
        m = mon.end_window("long")
    assert m.total_j("cpu") == pytest.approx((2 * MAX_RANGE_UJ + 5) / 1e6)


def test_missing_dram_domain(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    tree.add_package(0)
    with rapl_monitor(tmp_path) as mon:
        dram = next(d for d in mon.decisions if d.domain == "dram")
        assert dram.chosen is None
        assert dram.skipped == (("rapl", dram.skipped[0][1]), ("estimate-dram", "not selected (meters=rapl)"))
        assert "no readable dram zone" in dram.skipped[0][1]
        assert mon.domains == ("cpu",)


def test_absent_powercap_falls_back_to_estimate(tmp_path: Path) -> None:
    with rapl_monitor(tmp_path, ("rapl", "estimate")) as mon:
        cpu = next(d for d in mon.decisions if d.domain == "cpu")
        assert cpu.chosen == "estimate" and cpu.method is Method.ESTIMATED
        assert cpu.skipped[0][0] == "rapl" and "absent" in cpu.skipped[0][1]


def test_unreadable_counter_is_skipped_with_the_file_named(tmp_path: Path) -> None:
    # A directory in place of energy_uj cannot be read even by root, unlike chmod 000.
    tree = FakePowercap(tmp_path)
    pkg = tree.add_package(0)
    tree.make_unreadable(pkg)
    with rapl_monitor(tmp_path, ("rapl", "estimate")) as mon:
        cpu = next(d for d in mon.decisions if d.domain == "cpu")
        assert cpu.chosen == "estimate"
        assert str(pkg / "energy_uj") in cpu.skipped[0][1]
        assert "IsADirectoryError" in cpu.skipped[0][1]


def _probe_reason(root: Path, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """In a forked child: drop root (chmod 000 does not stop root), then probe."""
    if os.geteuid() == 0:
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    probe = probe_rapl(root)
    queue.put((probe.offers.get("rapl", ()), probe.reasons.get(("rapl", "cpu"), "")))


NOBODY = 65534


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to drop privileges")
@pytest.mark.process
def test_permission_denied_says_how_to_grant_access() -> None:
    # chmod 000 is what kernels do since CVE-2020-8694, but tests often run as root, who
    # reads anyway: the probe runs in a forked child that drops to uid 'nobody' first.
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        tree = FakePowercap(Path(tmp))
        pkg = tree.add_package(0)
        tree.deny(pkg)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_probe_reason, args=(Path(tmp), queue))
        child.start()
        offers, reason = queue.get(timeout=30)
        child.join(timeout=30)
    assert offers == ()
    assert f"permission denied reading {pkg / 'energy_uj'}" in reason
    assert "sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj" in reason
    assert "udev rule" in reason


def test_counter_unreadable_mid_window_marks_it_invalid(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    pkg = tree.add_package(0)
    with rapl_monitor(tmp_path) as mon:
        mon.begin_window("w")
        tree.make_unreadable(pkg)
        m = mon.end_window("w")
    assert not m.valid and "energy_uj" in (m.invalid_reason or "")
