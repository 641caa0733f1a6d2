"""Interference: other processes' CPU time and foreign GPU processes per window; flag and redo."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest

from fakes.nvml import FakeGpu, FakeNvml
from fakes.procfs import FakeProcStat
from nrg.errors import ParameterError
from nrg.meters import EnergyMonitor
from nrg.meters.activity import NAMESPACE_NOTE, CpuActivityReader, foreign_gpu_processes, other_cpu
from nrg.sweep.config import parse_config
from nrg.sweep.interference import InterferencePolicy
from nrg.sweep.run import run_sweep

TINY = {"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}


class Clock:
    """This process tree's CPU seconds, set by the test."""

    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


def test_other_cpu_is_busy_ticks_minus_our_own_time(tmp_path) -> None:
    stat = FakeProcStat(tmp_path, cpus=4)
    own = Clock()
    reader = CpuActivityReader(tmp_path, own_cpu_s=own)
    assert reader.cpus == 4
    begin = reader.read()
    # 3 s user + 1 s system + 0.5 s steal (another VM) + 0.25 s irq; idle and iowait are not busy
    stat.add(user=300, system=100, steal=50, irq=25, idle=5000, iowait=70)
    own.value = 1.5                                     # of which we used 1.5 s
    other_s, frac = other_cpu(begin, reader.read(), elapsed_s=2.0)
    assert other_s == pytest.approx(4.75 - 1.5)
    assert frac == pytest.approx((4.75 - 1.5) / (2.0 * 4))


def test_tick_rounding_never_reads_negative(tmp_path) -> None:
    FakeProcStat(tmp_path)
    own = Clock()
    reader = CpuActivityReader(tmp_path, own_cpu_s=own)
    begin = reader.read()
    own.value = 0.004                                   # less than a tick: /proc/stat has not moved
    assert other_cpu(begin, reader.read(), 0.01) == (0.0, 0.0)


def test_without_procfs_the_figures_are_unknown(tmp_path) -> None:
    reader = CpuActivityReader(tmp_path / "absent")
    assert reader.read() is None
    assert all(math.isnan(x) for x in other_cpu(None, reader.read(), 1.0))


_GRANDCHILD = """
import os, subprocess, sys
code = "import time, os\\nt = time.process_time()\\nwhile time.process_time() - t < 0.6: pass\\n" \\
       "open(sys.argv[1] + '.tmp', 'w').write(str(time.process_time()))\\nos.replace(sys.argv[1] + '.tmp', sys.argv[1])"
subprocess.Popen([sys.executable, "-c", code.replace("sys.argv[1]", repr(sys.argv[1]))], start_new_session=True)
"""


@pytest.mark.process
def test_a_process_outside_our_tree_counts_as_other(tmp_path) -> None:
    """A busy process that is not our descendant any more (its parent exited) is someone else."""
    done = tmp_path / "cpu_s"
    with EnergyMonitor.auto(meters=["estimate"]) as mon:
        mon.begin_window("w")
        subprocess.run([sys.executable, "-c", _GRANDCHILD, str(done)], check=True)  # exits at once
        deadline = time.monotonic() + 60
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        m = mon.end_window("w")
    busy_s = float(done.read_text())
    assert busy_s >= 0.6
    # other processes of this machine only add to it; ticks round by 10 ms per CPU
    assert m.other_cpu_s >= 0.8 * busy_s
    assert 0 < m.other_cpu_frac <= 1.0 + 1e-9


def test_foreign_gpu_processes_exclude_this_one() -> None:
    me = 1000
    assert foreign_gpu_processes({"gpu:0": [me, 7], "gpu:1": [8, 9]}, me) == (3, None)
    assert foreign_gpu_processes({"gpu:0": [7]}, me, holds_context=False) == (1, None)
    # running on the GPU but not listed under our PID: another PID namespace; one entry is us
    assert foreign_gpu_processes({"gpu:0": [7]}, me, holds_context=True) == (0, NAMESPACE_NOTE)
    assert foreign_gpu_processes({"gpu:0": [7, 8], "gpu:1": []}, me, holds_context=True) == (1, NAMESPACE_NOTE)
    assert foreign_gpu_processes({"gpu:0": [me]}, me, holds_context=True) == (0, None)


def test_monitor_reports_foreign_processes_on_fake_gpus() -> None:
    fake = FakeNvml([FakeGpu(processes=[os.getpid(), 4242]), FakeGpu(processes=[os.getpid()])])
    with EnergyMonitor.auto(meters=["nvml"], nvml_module=fake) as mon:
        with mon.window("w") as w:
            time.sleep(0.01)
        fake.gpus[0].processes = [os.getpid()]
        with mon.window("quiet") as q:
            time.sleep(0.01)
    assert w.measurement is not None and w.measurement.foreign_gpu_procs == 1
    assert q.measurement is not None and q.measurement.foreign_gpu_procs == 0
    assert w.measurement.to_record()["foreign_gpu_procs"] == 1


def test_container_pid_namespace_is_assumed_when_we_run_on_the_gpu() -> None:
    fake = FakeNvml([FakeGpu(processes=[31337])])          # a host PID, not ours
    with EnergyMonitor.auto(meters=["nvml"], nvml_module=fake, sync=lambda: None) as mon, mon.window("w") as w:
        pass
    assert w.measurement is not None and w.measurement.foreign_gpu_procs == 0
    assert mon.notes == {NAMESPACE_NOTE}


def test_policy_flags_busy_cpu_and_foreign_gpu_processes() -> None:
    from nrg.meters import Measurement

    policy = InterferencePolicy(max_other_cpu_frac=0.25)
    def m(frac: float, gpu: int | None = None) -> Measurement:
        return Measurement("g", 1.0, (), other_cpu_frac=frac, foreign_gpu_procs=gpu)
    assert not policy.flags(m(0.25)) and policy.flags(m(0.26))
    assert not policy.flags(m(math.nan))                   # unknown is not evidence
    assert policy.flags(m(0.0, gpu=1)) and not policy.flags(m(0.0, gpu=0))
    assert not InterferencePolicy(foreign_gpu_processes=False).flags(m(0.0, gpu=2))
    assert not InterferencePolicy(max_other_cpu_frac=None).flags(m(0.99))


@pytest.mark.parametrize(("value", "match"), [
    ({"max_other_cpu_frac": 0}, "in \\(0, 1\\]"), ({"max_other_cpu_frac": 1.5}, "in \\(0, 1\\]"),
    ({"max_retries": -1}, ">= 0"), ({"max_retries": True}, ">= 0"),
    ({"foreign_gpu_processes": "yes"}, "True, False"), ({"retries": 1}, "valid keys: max_other_cpu_frac"),
    ("strict", "give a mapping"),
])
def test_bad_interference_settings_are_refused(value, match) -> None:
    with pytest.raises(ParameterError, match=match):
        parse_config({"models": [TINY], "interference": value})


def test_interference_settings_change_the_cell_id() -> None:
    a = parse_config({"models": [TINY]}).cells()[0]
    b = parse_config({"models": [TINY], "interference": {"max_retries": 5}}).cells()[0]
    assert a.settings.interference == InterferencePolicy()
    assert b.settings.interference.max_retries == 5 and a.cell_id != b.cell_id
    assert parse_config(parse_config({"models": [TINY], "interference": {"max_retries": 5}})
                        .to_dict()).cells()[0].cell_id == b.cell_id


def sweep(tmp_path, proc: FakeProcStat, **changes):
    cfg = {"name": "i", "models": [TINY], "input_tokens": [8], "output_tokens": [4], "repeats": 2,
           "warmup": 0, "idle_s": 0, "isolate": False, "roofline": False, **changes}
    return run_sweep(cfg, tmp_path / "run", progress=False, monitor_options={"proc_root": proc.root})


@pytest.mark.process
def test_busy_repeats_are_kept_marked_and_redone_up_to_the_cap(tmp_path) -> None:
    proc = FakeProcStat(tmp_path / "proc")
    with proc.run_busy(ticks_per_ms=1):                    # neighbours burn ~10 CPU-s per second
        # 32 tokens: a window of tens of ms always holds a write of the fake's counter
        df = sweep(tmp_path, proc, output_tokens=[32], interference={"max_retries": 2})
    gen = df[df.phase == "generate"]
    assert len(gen) == 4 and gen["repeat"].tolist() == [0, 1, 2, 3]
    # the policy judges the whole generation window; a phase of a few ms may see no tick of the fake
    assert df["interference"].all() and (gen["other_cpu_frac"] > 0.25).all()
    assert (df["interference_retries"] == 2).all() and (df["repeats_n"] == 2).all()


def test_a_quiet_machine_flags_nothing(tmp_path) -> None:
    proc = FakeProcStat(tmp_path / "proc")                # counters never move: nobody else ran
    df = sweep(tmp_path, proc)
    assert not df["interference"].any() and (df["other_cpu_s"] == 0).all()
    assert (df["interference_retries"] == 0).all() and df["repeat"].nunique() == 2


def test_a_foreign_gpu_process_flags_the_repeat(tmp_path) -> None:
    proc = FakeProcStat(tmp_path / "proc")
    fake = FakeNvml([FakeGpu(processes=[4242])])
    df = run_sweep({"name": "g", "models": [TINY], "input_tokens": [8], "output_tokens": [4],
                    "repeats": 2, "warmup": 0, "idle_s": 0, "isolate": False, "roofline": False,
                    "meters": ["nvml", "estimate"], "interference": {"max_retries": 1}},
                   tmp_path / "run", progress=False,
                   monitor_options={"proc_root": proc.root, "nvml_module": fake})
    gen = df[df.phase == "generate"]
    assert (gen["foreign_gpu_procs"] == 1).all() and gen["interference"].all()
    assert (df["interference_retries"] == 1).all() and len(gen) == 3
