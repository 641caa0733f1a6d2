"""GPU and CPU settings are applied, recorded in the marker first, and restored on every exit."""
from __future__ import annotations

import json

import pytest

from nrg import dvfs
from nrg.errors import ParameterError

try:
    from fakes.nvml_dvfs import configure_fakes
except ImportError:  # tests/ collected as a package
    from tests.fakes.nvml_dvfs import configure_fakes


@pytest.fixture
def env(tmp_path):
    return configure_fakes(tmp_path)  # conftest restores the default DVFS target afterwards


def _max_freqs(env) -> list[int]:
    return [int((env.cpufreq / f"cpu{i}" / "cpufreq" / "scaling_max_freq").read_text())
            for i in range(2)]


def _marker_kinds(env) -> list[str]:
    return [e["kind"] for e in json.loads(env.marker.read_text())["entries"]]


def test_gpu_clock_lock_is_recorded_before_and_reset_after(env):
    with dvfs.locked_gpu_clocks(1200):
        assert env.fake.state["gpu_locked"] == [1200, 1200]
        assert _marker_kinds(env) == ["gpu_locked_clocks"]
    assert env.fake.state["gpu_locked"] is None
    assert env.fake.state["calls"] == ["SetGpuLockedClocks 1200 1200", "ResetGpuLockedClocks"]
    assert not env.marker.exists()


@pytest.mark.parametrize("error", [RuntimeError("cell failed"), KeyboardInterrupt()])
def test_gpu_settings_restored_on_exception_and_interrupt(env, error):
    with pytest.raises(type(error)), dvfs.gpu_power_limit(150), dvfs.locked_gpu_clocks(600, 1005):
        assert env.fake.state["power_limit_mw"] == 150_000
        raise error
    assert env.fake.state["gpu_locked"] is None
    assert env.fake.state["power_limit_mw"] == 250_000
    assert not env.marker.exists()


def test_unsupported_clock_rejected_with_list_before_any_change(env):
    with pytest.raises(ParameterError) as info, dvfs.locked_gpu_clocks(1234):
        pass
    assert "1410, 1395, 1200, 1005, 810, 600, 210" in str(info.value)
    assert env.fake.state["calls"] == []
    assert not env.marker.exists()


def test_memory_clock_checked_and_locked(env):
    with pytest.raises(ParameterError, match="1593, 810"), dvfs.locked_memory_clocks(1000):
        pass
    with dvfs.locked_memory_clocks(810):
        assert env.fake.state["mem_locked"] == [810, 810]
    assert env.fake.state["mem_locked"] is None


def test_power_limit_outside_constraints_rejected(env):
    for bad in (99, 301, "150", True):
        with pytest.raises(ParameterError, match="from 100 to 300 W"), dvfs.gpu_power_limit(bad):
            pass
    assert env.fake.state["calls"] == []


def test_permission_error_says_what_to_do_and_changes_nothing(env):
    env.fake.update(admin=False)
    with pytest.raises(dvfs.DvfsPermissionError) as info, dvfs.locked_gpu_clocks(1200):
        pytest.fail("body must not run")
    message = str(info.value)
    assert "no permission" in message and "needs root or `nvidia-smi -acp UNRESTRICTED`" in message
    assert "GPU 0" in message
    assert env.fake.state["gpu_locked"] is None
    assert not env.marker.exists()


def test_virtualized_gpu_reported_as_such(env):
    env.fake.update(virtualization=2)
    with pytest.raises(dvfs.DvfsUnsupportedError, match=r"virtualized \(vGPU guest\)"), dvfs.gpu_power_limit(200):
        pass


def test_memory_lock_unsupported_reported(env):
    env.fake.update(mem_lock_supported=False)
    with (pytest.raises(dvfs.DvfsUnsupportedError, match="not supported by this GPU or driver"),
          dvfs.locked_memory_clocks(810)):
        pass
    assert not env.marker.exists()


def test_no_gpu_is_unavailable(env):
    env.fake.update(present=False)
    with pytest.raises(dvfs.DvfsUnavailableError, match="NVML library was not found"), dvfs.locked_gpu_clocks(1200):
        pass


def test_cpu_max_freq_applied_to_every_cpu_and_restored(env):
    with dvfs.cpu_max_freq(1_500_000):
        assert _max_freqs(env) == [1_500_000, 1_500_000]
        assert _marker_kinds(env) == ["cpu_max_freq"]
    assert _max_freqs(env) == [3_000_000, 3_000_000]
    assert not env.marker.exists()


def test_cpu_max_freq_out_of_range_or_fractional_rejected(env):
    for bad in (700_000, 3_100_000, 1_500_000.5):
        with pytest.raises(ParameterError, match="from 800000 to 3000000"), dvfs.cpu_max_freq(bad):
            pass
    assert _max_freqs(env) == [3_000_000, 3_000_000]


def test_cpu_partial_write_is_rolled_back(env):
    target = env.cpufreq / "cpu1" / "cpufreq" / "scaling_max_freq"
    target.unlink()
    target.mkdir()  # the write to cpu1 fails after cpu0 was written
    with pytest.raises(dvfs.DvfsError), dvfs.cpu_max_freq(1_500_000):
        pass
    assert int((env.cpufreq / "cpu0" / "cpufreq" / "scaling_max_freq").read_text()) == 3_000_000
    assert not env.marker.exists()


def test_cpu_governor_switched_and_restored(env):
    gov = env.cpufreq / "cpu0" / "cpufreq" / "scaling_governor"
    with pytest.raises(ParameterError, match="'performance', 'powersave'"), dvfs.cpu_governor("ondemand"):
        pass
    with dvfs.cpu_governor("performance"):
        assert gov.read_text().strip() == "performance"
    assert gov.read_text().strip() == "powersave"


def test_no_cpufreq_directory_reported(env, tmp_path):
    dvfs.configure(nvml_module=env.fake, sysfs_root=tmp_path / "empty", marker_path=env.marker)
    with pytest.raises(dvfs.DvfsUnavailableError, match="no cpufreq"), dvfs.cpu_max_freq(1_500_000):
        pass


def test_recover_leaves_active_entries_alone(env):
    with dvfs.gpu_power_limit(150):
        report = dvfs.recover()
        assert report.restored == () and len(report.skipped) == 1
        assert env.fake.state["power_limit_mw"] == 150_000
    assert env.fake.state["power_limit_mw"] == 250_000


def test_configure_rejects_bad_values():
    with pytest.raises(ParameterError, match="gpu_index"):
        dvfs.configure(gpu_index=-1)
    with pytest.raises(ParameterError, match="sample_interval_s"):
        dvfs.configure(sample_interval_s=0)
