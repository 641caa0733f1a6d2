"""The DVFS sweep axes, the capability probe and ``nrg dvfs``."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nrg import dvfs
from nrg.commands.cli import main
from nrg.dvfs import marker
from nrg.errors import ParameterError
from nrg.sweep import axes

try:
    from fakes.nvml_dvfs import configure_fakes
except ImportError:  # tests/ collected as a package
    from tests.fakes.nvml_dvfs import configure_fakes

AXES = ("gpu_clock_mhz", "mem_clock_mhz", "power_limit_w", "cpu_max_freq_khz")


@pytest.fixture
def env(tmp_path):
    return configure_fakes(tmp_path)  # conftest restores the default DVFS target afterwards


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _stale_entry(kind, target, original, applied):
    entry = marker.new_entry(kind, target, original, applied)
    entry["pid"] = _dead_pid()
    return entry


@pytest.mark.process
def test_import_registers_axes_without_pynvml():
    code = ("import sys, nrg.dvfs, nrg.sweep.axes; "
            "assert 'pynvml' not in sys.modules; print(sorted(nrg.sweep.axes._REGISTRY))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for name in AXES:
        assert name in out.stdout
    assert all(axes.get(name).default is None for name in AXES)


@pytest.mark.parametrize("name", AXES)
def test_empty_list_rejected(env, name):
    with pytest.raises(ParameterError, match=rf"{name}=\[\] is not valid"):
        axes.get(name).validate([])


def test_validate_checks_against_device_before_any_change(env):
    axes.get("gpu_clock_mhz").validate([None, 1410, 210])
    axes.get("power_limit_w").validate([100, 250.5, None])
    axes.get("cpu_max_freq_khz").validate([800_000, 3_000_000])
    with pytest.raises(ParameterError, match="supported clocks \\(MHz\\): 1410, 1395"):
        axes.get("gpu_clock_mhz").validate([1410, 1500])
    with pytest.raises(ParameterError, match="supported clocks \\(MHz\\): 1593, 810"):
        axes.get("mem_clock_mhz").validate([900])
    with pytest.raises(ParameterError, match="from 100 to 300 W"):
        axes.get("power_limit_w").validate([350])
    with pytest.raises(ParameterError, match="800000 to 3000000"):
        axes.get("cpu_max_freq_khz").validate([4_000_000])
    assert env.fake.state["calls"] == []


def test_validate_on_machine_without_gpu_or_cpufreq(env, tmp_path):
    env.fake.update(present=False)
    dvfs.configure(nvml_module=env.fake, sysfs_root=tmp_path / "empty", marker_path=env.marker)
    axes.get("gpu_clock_mhz").validate([None])
    with pytest.raises(ParameterError, match="cannot be applied on this machine: no NVIDIA GPU"):
        axes.get("gpu_clock_mhz").validate([1410])
    with pytest.raises(ParameterError, match="cannot be applied on this machine: no cpufreq"):
        axes.get("cpu_max_freq_khz").validate([1_000_000])
    for name in AXES:
        with axes.get(name).environment(None) as observed:
            pass
        assert observed() == {}


def test_gpu_clock_environment_observes_and_restores(env):
    with axes.get("gpu_clock_mhz").environment(1005) as observed:
        assert env.fake.state["gpu_locked"] == [1005, 1005]
        during = observed()
    after = observed()
    assert env.fake.state["gpu_locked"] is None
    for cols in (during, after):
        assert cols["gpu_clock_mhz_observed_mean"] == 1005
        assert cols["gpu_clock_mhz_observed_min"] == cols["gpu_clock_mhz_observed_max"] == 1005


def test_a_lock_that_did_not_take_shows_in_observed_columns(env):
    env.fake.update(clocks_follow_lock=False)
    with axes.get("gpu_clock_mhz").environment(600) as observed:
        pass
    assert observed()["gpu_clock_mhz_observed_mean"] == 1410


def test_mem_power_and_cpu_environments(env):
    with axes.get("mem_clock_mhz").environment(810) as mem:
        assert env.fake.state["mem_locked"] == [810, 810]
    with axes.get("power_limit_w").environment(120) as power:
        assert env.fake.state["power_limit_mw"] == 120_000
    with axes.get("cpu_max_freq_khz").environment(1_200_000) as cpu:
        cap = env.cpufreq / "cpu1" / "cpufreq" / "scaling_max_freq"
        assert int(cap.read_text()) == 1_200_000
    assert mem()["mem_clock_mhz_observed_mean"] == 810
    assert power()["gpu_power_w_observed_max"] == 120.0  # fake draws 180 W, capped at 120
    # the fake sysfs does not slow down: the CPUs report 3.0 and 2.9 GHz, above the cap
    assert cpu()["cpu_freq_khz_observed_mean"] == 2_950_000
    assert cpu()["cpu_freq_khz_observed_max"] == 3_000_000
    assert env.fake.state["mem_locked"] is None and env.fake.state["power_limit_mw"] == 250_000
    assert int(cap.read_text()) == 3_000_000


@pytest.mark.process
def test_environment_recovers_a_killed_run_before_applying(env):
    env.fake.update(power_limit_mw=111_000, gpu_locked=[210, 210])
    marker.add_entry(env.marker, _stale_entry("gpu_power_limit", {"gpu_index": 0},
                                              {"limit_mw": 250_000}, {"limit_mw": 111_000}))
    marker.add_entry(env.marker, _stale_entry("gpu_locked_clocks", {"gpu_index": 0}, None, [210, 210]))
    with axes.get("gpu_clock_mhz").environment(1200):
        assert env.fake.state["power_limit_mw"] == 250_000
        assert env.fake.state["gpu_locked"] == [1200, 1200]
    assert not env.marker.exists()


def test_probe_reports_clocks_power_and_permission(env):
    result = dvfs.probe(allow_hardware_settings=True)
    g = result.gpu
    assert g.available and g.name == "Fake GPU"
    assert g.memory_clocks_mhz == (1593, 810)
    assert g.graphics_clocks_mhz[0] == 1410 and g.graphics_clocks_mhz[-1] == 210
    assert g.power_limit_range_w == (100.0, 300.0) and g.default_power_limit_w == 250.0
    assert g.can_lock_clocks is True and g.can_set_power_limit is True
    assert g.clock_levels(3) == [210, 1005, 1410]
    assert result.cpu.available and result.cpu.cpus == 2 and result.cpu.governors == (
        "performance", "powersave")
    assert all(result.axes.values())
    assert env.fake.state["gpu_locked"] is None and env.fake.state["power_limit_mw"] == 250_000
    text = result.summary()
    assert "graphics clocks MHz: 210-1410 (7 values)" in text and "range 100-300 W" in text


def test_probe_without_permission_says_why(env):
    env.fake.update(admin=False)
    g = dvfs.probe(allow_hardware_settings=True).gpu
    assert g.can_set_power_limit is False and g.can_lock_clocks is False
    assert "needs root or `nvidia-smi -acp UNRESTRICTED`" in g.permission_reason
    assert dvfs.probe(allow_hardware_settings=True).axes["gpu_clock_mhz"] is False


def test_probe_test_lock_round_trip(env):
    g = dvfs.probe(test_lock=True, allow_hardware_settings=True).gpu
    assert g.can_lock_clocks is True
    assert env.fake.state["calls"][-2:] == ["SetGpuLockedClocks 1410 1410", "ResetGpuLockedClocks"]
    assert env.fake.state["gpu_locked"] is None


def test_cli_on_machine_without_gpu_or_cpufreq(env, tmp_path, capsys):
    env.fake.update(present=False)
    assert main(["dvfs", "--sysfs-root", str(tmp_path / "empty")]) == 0
    out = capsys.readouterr().out
    assert "GPU 0: not available: no NVIDIA GPU" in out
    assert "CPU: cpufreq not available: no cpufreq" in out
    assert "Axes usable here: none" in out


def test_cli_with_real_pynvml_exits_zero(tmp_path, capsys):
    code = main(["dvfs", "--sysfs-root", str(tmp_path), "--marker", str(tmp_path / "m.json")])  # default target
    assert code == 0
    assert "GPU 0:" in capsys.readouterr().out


@pytest.mark.process
def test_cli_json_and_recover(env, capsys):
    assert main(["dvfs", "--sysfs-root", str(env.root), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gpu"]["memory_clocks_mhz"] == [1593, 810] and data["cpu"]["cpus"] == 2
    env.fake.update(gpu_locked=[600, 600])
    marker.add_entry(env.marker, _stale_entry("gpu_locked_clocks", {"gpu_index": 0}, None, [600, 600]))
    assert main(["dvfs", "--recover", "--allow-hardware-settings", "--sysfs-root", str(env.root)]) == 0
    assert "restored: gpu_locked_clocks" in capsys.readouterr().out
    assert env.fake.state["gpu_locked"] is None and not env.marker.exists()


@pytest.mark.process
def test_cli_recover_failure_keeps_marker_and_exits_1(env, capsys):
    env.fake.update(admin=False)
    marker.add_entry(env.marker, _stale_entry("gpu_power_limit", {"gpu_index": 0},
                                              {"limit_mw": 250_000}, {"limit_mw": 150_000}))
    assert main(["dvfs", "--recover", "--allow-hardware-settings", "--sysfs-root", str(env.root)]) == 1
    out = capsys.readouterr().out
    assert "FAILED: gpu_power_limit" in out and "needs root" in out
    assert len(marker.read_entries(env.marker)) == 1
