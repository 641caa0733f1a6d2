"""A process killed in the middle of a cell: SIGTERM restores at once, SIGKILL via the marker.

The child applies settings to a file-backed fake GPU and a fake sysfs tree,
so what it leaves behind is visible here after it dies.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nrg import dvfs

try:
    from fakes.nvml_dvfs import FakeNvml, configure_fakes
except ImportError:  # tests/ collected as a package
    from tests.fakes.nvml_dvfs import FakeNvml, configure_fakes

TESTS_DIR = Path(__file__).resolve().parent
# this checkout's package first: an installed nrg (another checkout) must not stand in for it
CHILD_PATH = os.pathsep.join([str(Path(dvfs.__file__).resolve().parents[2]), str(TESTS_DIR)])

CHILD = r"""
import os, signal, sys, time
from fakes.nvml_dvfs import FakeNvml
from nrg import dvfs

state, root, marker, mode = sys.argv[1:5]
dvfs.configure(nvml_module=FakeNvml(state), sysfs_root=root, marker_path=marker)
if mode == "chain":
    def previous(signum, frame):
        open(marker + ".previous-handler", "w").write(str(signum))
        os._exit(3)  # no unwinding: only a restore done before chaining can count
    signal.signal(signal.SIGTERM, previous)
with dvfs.cpu_max_freq(1_000_000), dvfs.gpu_power_limit(150), dvfs.locked_gpu_clocks(1200):
    print("ready", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def env(tmp_path):
    return configure_fakes(tmp_path, file_backed=True)  # conftest restores the default DVFS target


def _start(env, mode: str = "plain") -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(env.fake.state_path), str(env.root), str(env.marker), mode],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": CHILD_PATH})
    assert child.stdout.readline().strip() == "ready"
    return child


def _cap(env) -> int:
    return int((env.cpufreq / "cpu0" / "cpufreq" / "scaling_max_freq").read_text())


def _assert_applied(env) -> None:
    state = env.fake.state
    assert state["gpu_locked"] == [1200, 1200] and state["power_limit_mw"] == 150_000
    assert _cap(env) == 1_000_000
    kinds = [e["kind"] for e in json.loads(env.marker.read_text())["entries"]]
    assert kinds == ["cpu_max_freq", "gpu_power_limit", "gpu_locked_clocks"]


def _assert_restored(env) -> None:
    state = env.fake.state
    assert state["gpu_locked"] is None and state["power_limit_mw"] == 250_000
    assert _cap(env) == 3_000_000
    assert not env.marker.exists()


@pytest.mark.process
def test_sigterm_mid_cell_restores_and_dies_by_sigterm(env):
    child = _start(env)
    _assert_applied(env)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM
    _assert_restored(env)
    # newest first: clock lock, then power limit
    assert env.fake.state["calls"][-2:] == ["ResetGpuLockedClocks", "SetPowerManagementLimit 250000"]


@pytest.mark.process
def test_sigterm_chains_to_previous_handler_after_restoring(env):
    child = _start(env, mode="chain")
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == 3
    assert Path(str(env.marker) + ".previous-handler").read_text() == str(int(signal.SIGTERM))
    _assert_restored(env)


@pytest.mark.process
def test_sigkill_leaves_marker_and_recover_restores(env):
    child = _start(env)
    child.kill()
    assert child.wait(timeout=30) == -signal.SIGKILL
    _assert_applied(env)  # nothing could run: the GPU and CPUs stay changed
    report = dvfs.recover(env.marker, nvml_module=FakeNvml(env.fake.state_path))
    assert report.ok and len(report.restored) == 3
    _assert_restored(env)


def test_sigterm_handler_removed_after_the_block(env):
    before = signal.getsignal(signal.SIGTERM)
    with dvfs.locked_gpu_clocks(1200):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.process
def test_sighup_restores_and_dies_by_sighup(env):
    """A closed terminal or SSH session (SIGHUP) must not leave the GPU locked."""
    child = _start(env)
    _assert_applied(env)
    child.send_signal(signal.SIGHUP)
    assert child.wait(timeout=30) == -signal.SIGHUP
    _assert_restored(env)


def test_restore_all_undoes_every_active_setting_once(env):
    """What a thread that must end the process (a cell whose sweep died) calls before os._exit."""
    from nrg.dvfs import guard

    with dvfs.gpu_power_limit(150), dvfs.locked_gpu_clocks(1200):
        guard.restore_all()
        assert env.fake.state["gpu_locked"] is None and env.fake.state["power_limit_mw"] == 250_000
        assert not env.marker.exists()
    calls = env.fake.state["calls"]
    assert calls.count("ResetGpuLockedClocks") == 1          # the block's exit did not restore twice
    assert calls.count("SetPowerManagementLimit 250000") == 1
