"""GPU and CPU settings are restored on every way a cell or a sweep can end.

Each test runs the real runner with isolated cell processes on a file-backed
fake GPU (NVML) and a fake cpufreq tree, so what a killed process leaves
behind stays visible, as on real hardware. Every test asserts that the
settings were really changed (the fake GPU logs each call) and that the final
clocks, power limit and CPU caps equal the initial ones, with no marker left.

Paths: normal end, exception, SIGTERM / SIGHUP / SIGINT of a cell, cell
timeout with SIGKILL after the grace period (parent recovery), Ctrl-C /
SIGTERM / SIGHUP of the sweep (CLI exit 130), death of the sweep (kill -9 of
the parent: the cell restores before it exits), and a marker left by a
SIGKILL recovered at the start of a later sweep without any clock axis and
of chapter 0.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from fault_helpers import (
    FOREVER,
    cell_pids,
    child_env,
    config,
    gone,
    hardware,
    wait_for,
    write_config,
)

from fakes.nvml_dvfs import configure_fakes
from nrg import dvfs
from nrg.commands.cli import main
from nrg.sweep.run import run_sweep
from nrg.sweep.schedule import signals
from nrg.sweep.schedule.signals import SweepInterrupted

GPU_AXES = {"gpu_clock_mhz": [1200], "power_limit_w": [150]}
ALL_AXES = {**GPU_AXES, "cpu_max_freq_khz": [1_000_000]}
LOCK_CALL = "SetGpuLockedClocks 1200 1200"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Fake GPU + cpufreq shared with cell processes; the initial hardware state."""
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])
    monkeypatch.setenv("NRG_STATE_DIR", str(tmp_path / "state"))
    fakes = configure_fakes(tmp_path, file_backed=True)
    fakes.initial = hardware(fakes)
    yield fakes
    dvfs.configure()


@pytest.fixture
def harmless_signals():
    """A signal that arrives after the sweep ended must not end the test session."""
    got: list[int] = []
    saved = {s: signal.getsignal(s) for s in signals.SIGNALS}
    for s in saved:
        signal.signal(s, lambda signum, frame: got.append(signum))
    yield got
    for s, handler in saved.items():
        signal.signal(s, handler)


def _applied(env, cpu: bool = True) -> bool:
    """Every setting of the cell is in force (the signal must not land half-way through applying)."""
    now = hardware(env)
    return (now["gpu_locked"] == [1200, 1200] and now["power_limit_mw"] == 150_000
            and (not cpu or set(now["cpu_max_khz"]) == {1_000_000})
            and LOCK_CALL in env.fake.state["calls"])


def _no_parent_recovery(record: pytest.WarningsRecorder) -> None:
    """The cell restored by itself: the sweep found nothing to recover."""
    assert not [w for w in record if "left by a killed process" in str(w.message)]


def _assert_restored(env) -> None:
    assert LOCK_CALL in env.fake.state["calls"], "the cell never locked the clock: nothing was tested"
    assert hardware(env) == env.initial
    assert not env.marker.exists() or json.loads(env.marker.read_text())["entries"] == []


def _in_background(action) -> threading.Thread:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # reported by the test
            errors.append(exc)
            os.kill(os.getpid(), signal.SIGINT)   # a failed check ends the sweep it watches: no hang

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def _joined(thread: threading.Thread) -> None:
    thread.join(timeout=120)
    if thread.errors:  # type: ignore[attr-defined]
        raise thread.errors[0]  # type: ignore[attr-defined]


@contextlib.contextmanager
def _watched(thread: threading.Thread):
    """Run the sweep under a watching thread; its failure (not the interrupt it caused) is the test's."""
    try:
        yield
    except KeyboardInterrupt:
        if thread.errors:  # type: ignore[attr-defined]
            raise thread.errors[0] from None  # type: ignore[attr-defined]
        raise


def test_normal_end_restores(env, tmp_path):
    df = run_sweep(config(**ALL_AXES), tmp_path / "run", progress=False)
    assert (df["status"] == "ok").all()
    assert df["gpu_clock_mhz_observed_mean"].iloc[0] == 1200          # the cell ran at the clock
    _assert_restored(env)


def test_exception_in_the_cell_restores(env, tmp_path):
    env.fake.update(mem_lock_supported=False)   # validated (clock listed), refused when applied
    df = run_sweep(config(**GPU_AXES, mem_clock_mhz=[810]), tmp_path / "run", progress=False)
    assert (df["status"] == "failed").all() and df["error"].str.contains("memory").all()
    assert "SetPowerManagementLimit 150000" in env.fake.state["calls"]
    _assert_restored(env)


def test_signals_to_a_cell_restore_before_it_dies(env, tmp_path, recwarn):
    """SIGTERM, SIGHUP, SIGINT sent to each cell in turn; the sweep records them and goes on."""
    sent = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]

    def hit_each_cell() -> None:
        for signum in sent:
            wait_for(lambda: _applied(env, cpu=False), what="the cell's settings")
            pid = wait_for(lambda: cell_pids(os.getpid()), what="the cell process")[0]
            os.kill(pid, signum)
            wait_for(lambda pid=pid: gone(pid), 60, "the cell to exit")
            assert hardware(env) == env.initial, f"after {signum.name}"
            env.fake.update(calls=[])

    thread = _in_background(hit_each_cell)
    with _watched(thread):
        df = run_sweep(config(**GPU_AXES, input_tokens=[8, 9, 10], repeats=FOREVER), tmp_path / "run",
                       progress=False)
    _joined(thread)
    assert len(df) == 3 and (df["status"] == "failed").all()
    errors = " ".join(df["error"])
    assert "SIGTERM" in errors and "SIGHUP" in errors and "KeyboardInterrupt" in errors, errors
    assert hardware(env) == env.initial and not env.marker.exists()
    _no_parent_recovery(recwarn)


def test_timeout_sigterm_ignored_then_sigkill_and_parent_recovery(env, tmp_path, monkeypatch):
    """A cell past cell_timeout_s that cannot react (stopped) is SIGKILLed; the sweep restores."""
    monkeypatch.setattr(signals, "TERM_GRACE_S", 1.0)

    def freeze_cell() -> None:
        wait_for(lambda: _applied(env), what="the cell's settings")
        os.kill(wait_for(lambda: cell_pids(os.getpid()), what="the cell")[0], signal.SIGSTOP)

    thread = _in_background(freeze_cell)
    with pytest.warns(UserWarning, match="restored settings left by a killed process"):
        df = run_sweep(config(**ALL_AXES, repeats=FOREVER, cell_timeout_s=25), tmp_path / "run",
                       progress=False)
    _joined(thread)
    assert df["status"].tolist() == ["failed"]
    assert "cell_timeout_s=25" in df["error"].iloc[0]
    _assert_restored(env)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["ctrl-c", "sigterm", "sighup"])
def test_stopping_the_sweep_stops_its_cell_gently_and_exits_130(env, tmp_path, capsys, signum,
                                                                 harmless_signals, recwarn):
    cfg = write_config(tmp_path / "c.yaml", **ALL_AXES, repeats=FOREVER)

    def interrupt() -> None:
        wait_for(lambda: _applied(env), what="the cell's settings")
        os.kill(os.getpid(), signum)

    thread = _in_background(interrupt)
    status = main(["sweep", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"])
    _joined(thread)
    assert status == 130
    assert "interrupted; 0 cells done, rerun to resume" in capsys.readouterr().err
    assert not list((tmp_path / "run" / "cells").glob("*.parquet"))   # the cell reruns next time
    _assert_restored(env)
    _no_parent_recovery(recwarn)
    assert harmless_signals == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
def test_in_process_sweep_restores_on_a_signal_then_stops(env, tmp_path, signum, harmless_signals):
    """isolate: false -- the guard restores in the sweep's own process, then the sweep stops."""
    def interrupt() -> None:
        wait_for(lambda: _applied(env), what="the cell's settings")
        os.kill(os.getpid(), signum)

    thread = _in_background(interrupt)
    with pytest.raises(SweepInterrupted) as info:
        run_sweep(config(**ALL_AXES, repeats=FOREVER, isolate=False), tmp_path / "run", progress=False)
    _joined(thread)
    assert info.value.signum == signum and info.value.cells_done == 0
    _assert_restored(env)
    assert harmless_signals == []


SWEEP = r"""
import sys
from fakes.nvml_dvfs import FakeNvml
from nrg import dvfs
from nrg.commands.cli import main
state, root, marker, cfg, out = sys.argv[1:6]
dvfs.configure(nvml_module=FakeNvml(state), sysfs_root=root, marker_path=marker)
sys.exit(main(["sweep", cfg, "--out", out, "--no-progress"]))
"""


def test_cell_restores_when_its_sweep_is_killed(env, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", **ALL_AXES, repeats=FOREVER)
    sweep = subprocess.Popen(
        [sys.executable, "-c", SWEEP, str(env.fake.state_path), str(env.root), str(env.marker),
         str(cfg), str(tmp_path / "run")], env=child_env(), stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _applied(env) or sweep.poll() is not None, what="the cell's settings")
        cells = cell_pids(sweep.pid)
        assert cells, sweep.stderr.read().decode()[-2000:] if sweep.poll() is not None else "no cell"
        sweep.kill()                                   # the parent dies; SIGKILL runs nothing
        sweep.wait()
        wait_for(lambda: all(gone(p) for p in cells), 60, "the orphaned cell to exit")
    finally:
        if sweep.poll() is None:
            sweep.kill()
    _assert_restored(env)


KILLED_RUN = r"""
import sys, time
from fakes.nvml_dvfs import FakeNvml
from nrg import dvfs
state, root, marker = sys.argv[1:4]
dvfs.configure(nvml_module=FakeNvml(state), sysfs_root=root, marker_path=marker)
with dvfs.cpu_max_freq(1_000_000), dvfs.gpu_power_limit(150), dvfs.locked_gpu_clocks(1200):
    print("ready", flush=True)
    time.sleep(120)
"""


def _leave_settings_after_kill9(env) -> None:
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(env.fake.state_path),
                              str(env.root), str(env.marker)],
                             stdout=subprocess.PIPE, text=True, env=child_env())
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.kill()
    child.wait()
    assert hardware(env) != env.initial and env.marker.exists()


def test_sweep_without_clock_axes_recovers_a_killed_runs_settings_first(env, tmp_path):
    _leave_settings_after_kill9(env)
    with pytest.warns(UserWarning, match="restored settings left by a killed process"):
        df = run_sweep(config(isolate=False), tmp_path / "run", progress=False)
    assert (df["status"] == "ok").all()
    _assert_restored(env)


def test_chapter_0_recovers_a_killed_runs_settings_before_measuring(env):
    from nrg.book.chapters.c00_how_energy_is_measured import driver as measurement

    _leave_settings_after_kill9(env)
    params = measurement.Params(idle_s=0.1, meters=["estimate"])
    with pytest.warns(UserWarning, match="restored settings"):
        monitor = measurement.open_monitor(params)
    monitor.close()
    _assert_restored(env)


def test_interrupted_message_counts_done_cells() -> None:
    exc = SweepInterrupted(signal.SIGTERM, 3, 8)
    assert exc.message == "interrupted; 3 cells done, rerun to resume (SIGTERM)"
    assert isinstance(exc, KeyboardInterrupt)




@pytest.mark.parametrize("isolated", [False, True], ids=["inline", "isolated-workers"])
def test_ctrl_c_in_the_middle_of_a_blocked_sweep_keeps_its_repeats(tmp_path, isolated):
    """SIGINT half-way through a blocked sweep (no cell finished yet): exit 130, the repeats stay."""
    from fault_helpers import BLOCKED_REPEATS, resume_and_audit, stop_blocked_sweep

    n_cells = 2 if isolated else 4
    stopped = stop_blocked_sweep(tmp_path, n_cells + 1, signal.SIGINT, isolated=isolated, n_cells=n_cells)
    assert stopped["rc"] == 130, stopped["stderr"][-2000:]
    assert n_cells + 1 <= stopped["kept"] < n_cells * BLOCKED_REPEATS
    unfinished = stopped["kept"] - stopped["cells_done"] * BLOCKED_REPEATS
    assert (f"interrupted; {stopped['cells_done']} cells done and {unfinished} repeats of unfinished "
            "cells kept, rerun to resume") in stopped["stderr"]
    print("\nSIGINT in blocked order:", json.dumps(resume_and_audit(stopped, n_cells=n_cells)))
