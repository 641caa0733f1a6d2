"""Hardware settings need consent: without ``allow_hardware_settings`` no path writes to the GPU or cpufreq.

Every path that could change a GPU clock, memory clock, power limit or CPU
frequency -- the sweep axes (config and ``nrg sweep``), the probe and
``nrg dvfs`` -- is run against the fake NVML and the fake sysfs, which record
every state-changing call (the NVML fake) and every file write (compared by
content and modification time). Chapter 3's driver has its own tests in
``test_chapter_dvfs.py``.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nrg import dvfs
from nrg.commands.cli import main
from nrg.dvfs import marker
from nrg.errors import ParameterError
from nrg.sweep.config import parse_config
from nrg.sweep.run import run_sweep

try:
    from fakes.nvml_dvfs import configure_fakes
except ImportError:  # tests/ collected as a package
    from tests.fakes.nvml_dvfs import configure_fakes

TINY = {"models": [{"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}],
        "input_tokens": 8, "output_tokens": 2, "repeats": 1, "warmup": 0, "idle_s": 0,
        "meters": ["estimate"], "isolate": False, "quality": {"items": 0}, "roofline": False}

# axis -> (a value the fake device supports, what the refusal must say)
CHANGES = {
    "gpu_clock_mhz": (1005, "lock the graphics clock at 1005 MHz on GPU 0 (Fake GPU)"),
    "mem_clock_mhz": (810, "lock the memory clock at 810 MHz on GPU 0 (Fake GPU)"),
    "power_limit_w": (150, "set the board power limit to 150 W on GPU 0 (Fake GPU)"),
    "cpu_max_freq_khz": (1_200_000, "cap scaling_max_freq at 1200000 kHz on 2 CPU(s) cpu0-cpu1"),
}


@pytest.fixture
def env(tmp_path):
    yield configure_fakes(tmp_path)
    dvfs.configure()


def _sysfs(root: Path) -> dict[str, tuple[str, int]]:
    """Every file of the fake sysfs with its content and modification time: a write shows."""
    return {str(p): (p.read_text(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def _untouched(env, before: dict[str, tuple[str, int]]) -> None:
    assert env.fake.state["calls"] == []
    assert _sysfs(env.root) == before
    assert not env.marker.exists()


# ---------------------------------------------------------------- sweep axes


@pytest.mark.parametrize("axis", sorted(CHANGES))
def test_sweep_axis_without_consent_is_refused_before_any_work(env, tmp_path, axis):
    value, change = CHANGES[axis]
    before = _sysfs(env.root)
    with pytest.raises(ParameterError) as info:
        run_sweep({**TINY, "axes": {axis: [None, value]}}, tmp_path / "run", progress=False)
    message = str(info.value)
    assert change in message                                   # what, and on which device
    assert "allow_hardware_settings: true" in message and "--allow-hardware-settings" in message
    assert "only null" in message                              # the passive alternative
    assert not (tmp_path / "run").exists()
    _untouched(env, before)


def test_sweep_of_default_values_only_needs_no_consent_and_observes(env, tmp_path):
    before = _sysfs(env.root)
    axes = {name: [None] for name in CHANGES}
    df = run_sweep({**TINY, "axes": axes}, tmp_path / "run", progress=False)
    assert set(df["status"]) == {"ok"}
    assert (df["gpu_clock_mhz_observed_mean"] == 1410).all()   # the clock the GPU chose itself
    assert (df["cpu_freq_khz_observed_max"] == 3_000_000).all()
    assert env.fake.state["calls"] == []
    after = _sysfs(env.root)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    assert after == before


def test_sweep_with_consent_changes_and_restores(env, tmp_path):
    config = {**TINY, "axes": {"gpu_clock_mhz": [1005], "cpu_max_freq_khz": [1_200_000]},
              "allow_hardware_settings": True}
    df = run_sweep(config, tmp_path / "run", progress=False)
    assert set(df["status"]) == {"ok"} and (df["gpu_clock_mhz_observed_mean"] == 1005).all()
    assert env.fake.state["calls"] == ["SetGpuLockedClocks 1005 1005", "ResetGpuLockedClocks"]
    assert env.fake.state["gpu_locked"] is None
    cap = env.cpufreq / "cpu0" / "cpufreq" / "scaling_max_freq"
    assert int(cap.read_text()) == 3_000_000


def test_consent_is_part_of_the_config_but_not_of_the_cell_id():
    base = {**TINY, "axes": {"gpu_clock_mhz": [1005]}}
    without, with_ = parse_config(base), parse_config({**base, "allow_hardware_settings": True})
    assert without.allow_hardware_settings is False and with_.allow_hardware_settings is True
    assert [c.cell_id for c in without.cells()] == [c.cell_id for c in with_.cells()]
    assert parse_config(with_.to_dict()) == with_
    with pytest.raises(ParameterError, match="allow_hardware_settings='yes' is not valid"):
        parse_config({**base, "allow_hardware_settings": "yes"})


def test_nrg_sweep_cli_refuses_without_the_flag_and_runs_with_it(env, tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**TINY, "axes": {"power_limit_w": [150]}}))
    before = _sysfs(env.root)
    assert main(["sweep", str(path), "--out", str(tmp_path / "run"), "--inline", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "set the board power limit to 150 W on GPU 0 (Fake GPU)" in err and "--allow-hardware-settings" in err
    assert not (tmp_path / "run").exists()
    _untouched(env, before)
    assert main(["sweep", str(path), "--out", str(tmp_path / "run"), "--inline", "--no-progress",
                 "--allow-hardware-settings"]) == 0
    assert env.fake.state["calls"] == ["SetPowerManagementLimit 150000", "SetPowerManagementLimit 250000"]


# ---------------------------------------------------------------- probe and nrg dvfs


def test_probe_without_consent_only_reads(env):
    before = _sysfs(env.root)
    result = dvfs.probe()
    assert result.gpu.available and result.gpu.graphics_clocks_mhz[0] == 1410
    assert result.gpu.can_set_power_limit is None
    assert "not tried: allow_hardware_settings is off" in result.gpu.permission_reason
    _untouched(env, before)
    with pytest.raises(ParameterError, match="test-lock the graphics clock of GPU 0"):
        dvfs.probe(test_lock=True)
    _untouched(env, before)


def test_nrg_dvfs_without_the_flag_writes_nothing(env, capsys):
    before = _sysfs(env.root)
    assert main(["dvfs", "--sysfs-root", str(env.root)]) == 0
    assert "not tried: allow_hardware_settings is off" in capsys.readouterr().out
    assert main(["dvfs", "--sysfs-root", str(env.root), "--test-lock"]) == 2
    assert "--allow-hardware-settings" in capsys.readouterr().err
    _untouched(env, before)
    assert main(["dvfs", "--sysfs-root", str(env.root), "--test-lock", "--allow-hardware-settings"]) == 0
    assert env.fake.state["calls"][-2:] == ["SetGpuLockedClocks 1410 1410", "ResetGpuLockedClocks"]


def test_nrg_dvfs_recover_restores_what_nrg_left_without_the_flag(env, capsys):
    """One rule with a sweep's start: undoing nrg's own leftover change needs no consent, and says so."""
    assert main(["dvfs", "--recover", "--sysfs-root", str(env.root)]) == 0     # nothing to restore
    assert "nothing to recover" in capsys.readouterr().out
    entry = marker.new_entry("gpu_locked_clocks", {"gpu_index": 0}, None, [600, 600])
    entry["pid"] = 2 ** 22 + 7                                                   # no such process
    env.fake.update(gpu_locked=[600, 600])
    marker.add_entry(env.marker, entry)
    assert main(["dvfs", "--recover", "--sysfs-root", str(env.root)]) == 0
    out = capsys.readouterr().out
    assert "nrg itself left changed" in out and "needs no --allow-hardware-settings" in out
    assert env.fake.state["calls"] == ["ResetGpuLockedClocks"] and not env.marker.exists()
