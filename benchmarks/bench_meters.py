"""Overhead of nrg.meters on a CPU-bound workload: meter on vs off, interleaved in one run.

Each pair of trials runs the same pure-Python loop (GIL-bound, so it is the
workload most hurt by a sampling thread) once bare and once inside a measurement
window, in alternating order; the slowdown of a pair is on/off - 1. The median
over pairs and its interquartile range are reported per configuration:

* ``auto``: this machine's chain (``EnergyMonitor.auto()``: here the CPU estimate,
  which reads CPU time at the window's ends and runs no thread);
* ``sampling``: the NVML power-sampling thread at its default rate (0.1 s), against
  the fake NVML of the tests (its power call is cheaper than a real driver's, a few
  tens of microseconds, so the real figure is slightly higher);
* ``rapl``: RAPL counters in a fake powercap tree, with its wrap-catching poll thread.

Also shown: the median slowdown in process CPU time (less sensitive to other
processes on a shared machine; it includes the meters' own threads), the cost
of one empty window (begin + end readings), and the CPU the meters' threads use
while the workload sleeps (% of one core): the last two are low-noise. Target: median slowdown <= 1 %. Usage: ``python benchmarks/bench_meters.py [--trials 20]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))   # the hardware fakes live with the tests

from nrg.meters import EnergyMonitor  # noqa: E402

TARGET_PCT = 1.0


def loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def calibrate(trial_s: float) -> int:
    """Iterations of :func:`loop` that take about ``trial_s``."""
    n = 100_000
    while True:
        t0 = time.perf_counter()
        loop(n)
        elapsed = time.perf_counter() - t0
        if elapsed > 0.05:
            return max(1, int(n * trial_s / elapsed))
        n *= 4


def make_monitor(config: str, tmp: Path) -> EnergyMonitor:
    if config == "auto":
        return EnergyMonitor.auto()
    if config == "sampling":
        from fakes.nvml import FakeGpu, FakeNvml

        fake = FakeNvml([FakeGpu(counter_supported=False)])
        return EnergyMonitor.auto(meters=["nvml"], nvml_module=fake)
    if config == "rapl":
        from fakes.sysfs import FakePowercap

        tree = FakePowercap(tmp)
        tree.add_package(0)
        tree.add_dram(0)
        return EnergyMonitor.auto(meters=["rapl"], sysfs_root=tmp)
    raise SystemExit(f"unknown config {config!r}; choose auto, sampling, rapl")


def timed(work: Callable[[], object], monitor: EnergyMonitor | None) -> tuple[float, float]:
    """Wall and process-CPU seconds for one trial; with a monitor, the window's reads count."""
    t0, c0 = time.perf_counter(), time.process_time()
    if monitor is None:
        work()
    else:
        monitor.begin_window("trial")
        work()
        monitor.end_window("trial")
    return time.perf_counter() - t0, time.process_time() - c0


def window_cost_ms(config: str, tmp: Path, windows: int = 200) -> float:
    """Wall milliseconds for one empty window (begin + end readings)."""
    with make_monitor(config, tmp) as mon:
        t0 = time.perf_counter()
        for _ in range(windows):
            mon.begin_window("empty")
            mon.end_window("empty")
        return 1e3 * (time.perf_counter() - t0) / windows


def background_cpu_pct(config: str, tmp: Path, seconds: float = 1.0) -> float:
    """CPU used by the meters' threads while the main thread sleeps, in % of one core.

    Counts only this process's CPU time, so other load on the machine barely moves it:
    a low-noise proxy for the threads' share of the slowdown.
    """
    with make_monitor(config, tmp) as mon:
        mon.begin_window("idle")
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        cpu_s, wall_s = time.process_time() - c0, time.perf_counter() - t0
        mon.end_window("idle")
    return 100.0 * cpu_s / wall_s


def _slowdown(on: list[float], off: list[float]) -> tuple[float, float, float]:
    slow = sorted(100.0 * (a / b - 1.0) for a, b in zip(on, off, strict=True))
    q = statistics.quantiles(slow, n=4)
    return statistics.median(slow), q[0], q[2]


def run_config(config: str, work: Callable[[], object], trials: int, tmp: Path) -> dict[str, float]:
    """Alternate off/on (order flipped every pair); the monitor lives only during 'on' trials."""
    runs: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    for i in range(trials):
        for state in (("off", "on") if i % 2 == 0 else ("on", "off")):
            if state == "off":
                runs["off"].append(timed(work, None))
                continue
            with make_monitor(config, tmp) as mon:
                runs["on"].append(timed(work, mon))
    wall = _slowdown([w for w, _ in runs["on"]], [w for w, _ in runs["off"]])
    cpu = _slowdown([c for _, c in runs["on"]], [c for _, c in runs["off"]])
    return {"off_s": statistics.median(w for w, _ in runs["off"]),
            "on_s": statistics.median(w for w, _ in runs["on"]),
            "median_pct": wall[0], "p25_pct": wall[1], "p75_pct": wall[2],
            "cpu_median_pct": cpu[0], "window_ms": window_cost_ms(config, tmp),
            "background_pct": background_cpu_pct(config, tmp)}


def modelled_pct(r: dict[str, float]) -> float:
    """Overhead from the low-noise parts: the window's reads plus the threads' CPU.

    A GIL-bound workload loses at most the time the meter's threads hold the
    interpreter, so their CPU share bounds their part of the slowdown.
    """
    return 100.0 * r["window_ms"] / (1e3 * r["off_s"]) + r["background_pct"]


def verdict_of(r: dict[str, float]) -> str:
    """ok / over target from the A/B medians; when their spread straddles the
    target, the modelled overhead decides and the verdict says so."""
    if r["median_pct"] <= TARGET_PCT:
        return "ok"
    if r["p25_pct"] > TARGET_PCT:
        return "over target"
    if r["p25_pct"] <= 0.0 <= r["p75_pct"] and modelled_pct(r) <= TARGET_PCT:
        return "ok by model (A/B within noise)"
    return "inconclusive (noise)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="pairs of trials per config")
    parser.add_argument("--trial-s", type=float, default=0.25, help="seconds per trial")
    parser.add_argument("--configs", default="auto,sampling,rapl")
    ns = parser.parse_args(argv)
    if ns.trials < 3 or ns.trial_s <= 0:
        parser.error("--trials must be >= 3 and --trial-s > 0")
    n = calibrate(ns.trial_s)
    work = lambda: loop(n)  # noqa: E731
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"workload: pure-Python loop of {n:,} iterations (~{ns.trial_s:g} s); "
          f"{ns.trials} interleaved pairs per config; load average {load[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'config':<10} {'off (s)':>8} {'on (s)':>8} {'wall slowdown':>14} {'IQR (%)':>16} "
          f"{'CPU-time':>9} {'window':>9} {'threads':>8} {'modelled':>9}  verdict")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for config in ns.configs.split(","):
            r = run_config(config, work, ns.trials, Path(tmp) / config)
            worst = max(worst, r["median_pct"])
            verdict = verdict_of(r)
            print(f"{config:<10} {r['off_s']:>8.4f} {r['on_s']:>8.4f} {r['median_pct']:>+13.2f}% "
                  f"{r['p25_pct']:>+7.2f} .. {r['p75_pct']:>+6.2f} {r['cpu_median_pct']:>+8.2f}% "
                  f"{r['window_ms']:>6.3f} ms {r['background_pct']:>7.3f}% "
                  f"{modelled_pct(r):>8.3f}%  {verdict}")
    print(f"verdict: worst median wall-clock slowdown {worst:+.2f}% "
          f"({'within' if worst <= TARGET_PCT else 'above'} the {TARGET_PCT:g}% target). "
          "'window' is the cost of one window's two readings, 'threads' the CPU the meters' "
          "threads use while the workload sleeps (% of one core), 'modelled' their sum as a share "
          "of a trial; an IQR wider than the target means a noisy machine: rerun on a quiet one "
          "(or with more --trials).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
