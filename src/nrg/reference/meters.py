"""Part (a) of ``nrg reference``: NVML's energy counter against integrated power samples.

Why: every GPU number of the book rests on ``nvmlDeviceGetTotalEnergyConsumption``;
this checks it on the machine itself. Over the same windows -- idle, then a
matrix-multiply load of growing length -- the counter and the trapezoid
integral of ``nvmlDeviceGetPowerUsage`` samples are read side by side; their
difference in % is the agreement. The counter's update period is measured by
polling it and timing its steps (NVML documents none). Clocks and power the
GPU chose by itself are sampled in every window (observed, never set).
Writes ``meters.json`` and ``windows.csv`` under the chapter folder.
"""
from __future__ import annotations

import functools
import itertools
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import contextlib

    from nrg.dvfs.sampler import Sampler

RESULT = "meters.json"


@dataclass(frozen=True)
class MetersPlan:
    """Window lengths of the comparison (seconds) on ``device``; ``gpu_index`` is read through NVML."""

    device: str
    idle_s: float
    windows_s: tuple[float, ...]
    poll_s: float                # how long the counter is polled to time its steps
    gpu_index: int = 0
    sample_period_s: float = 0.02

    def estimate_s(self) -> float:
        """Wall time of the part: its windows plus start-up (NVML, torch, the matmul's first call)."""
        return self.idle_s + sum(self.windows_s) + self.poll_s + (8.0 if self.device.startswith("cuda") else 4.0)


def _busy(device: str) -> Callable[[float], int]:
    """A matmul loop on ``device`` that runs for a given time; returns the iterations done."""
    import torch

    size = 4096 if device.startswith("cuda") else 256
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.mm(a, b)
    sync()

    def run(duration_s: float) -> int:
        n, end = 0, time.perf_counter() + duration_s
        while time.perf_counter() < end:
            torch.mm(a, b)
            sync()
            n += 1
        return n
    return run


def _sleep(duration_s: float) -> int:
    time.sleep(duration_s)
    return 0


def update_period(read: Callable[[], float], poll_s: float) -> dict[str, Any]:
    """Poll a counter for ``poll_s``; the median time between its changes is its update period."""
    changes: list[float] = []
    last = read()
    end = time.perf_counter() + poll_s
    while time.perf_counter() < end:
        value = read()
        if value != last:
            changes.append(time.perf_counter())
            last = value
        time.sleep(0.001)
    steps = [b - a for a, b in itertools.pairwise(changes)]
    return {"counter_update_period_s": statistics.median(steps) if len(steps) >= 2 else None,
            "counter_changes": len(changes), "polled_s": poll_s}


def _observer(gpu_index: int) -> tuple[contextlib.ExitStack[bool | None], Callable[[], Sampler] | None]:
    """Sample the GPU's graphics clock and power during a window (reads only)."""
    import contextlib

    from nrg.dvfs import gpu as dvfs_gpu
    from nrg.dvfs.common import DvfsError
    from nrg.dvfs.sampler import Sampler

    stack = contextlib.ExitStack()
    try:
        device = stack.enter_context(dvfs_gpu.open_gpu(gpu_index))
    except DvfsError:
        return stack, None
    readers = {"gpu_clock_mhz": lambda: device.clock_mhz("graphics"), "gpu_power_w": device.power_w}
    return stack, lambda: Sampler(readers, 0.05)


def _window(name: str, counter: Any, sampling: Any, domain: str, work: Callable[[], int],
            observe: Callable[[], Any] | None) -> dict[str, Any]:
    sampler = observe().start() if observe else None
    c0, s0, t0 = counter.read_j()[domain], sampling.read_j()[domain], time.perf_counter()
    iterations = work()
    t1 = time.perf_counter()
    c1, s1 = counter.read_j()[domain], sampling.read_j()[domain]
    observed: dict[str, Any] = {}
    if sampler is not None:
        sampler.stop()
        observed = sampler.columns()
    elapsed, counter_j, sampling_j = t1 - t0, c1 - c0, s1 - s0
    return {"window": name, "elapsed_s": elapsed, "iterations": iterations, "counter_j": counter_j,
            "sampling_j": sampling_j, "counter_power_w": counter_j / elapsed,
            "sampling_power_w": sampling_j / elapsed,
            "agreement_pct": 100.0 * (sampling_j - counter_j) / counter_j if counter_j > 0 else None,
            **observed}


def measure(plan: MetersPlan, out_dir: Path) -> dict[str, Any]:
    """Run the comparison and write ``meters.json``; a machine without the counter says why."""
    from nrg.meters.nvml import COUNTER, SAMPLING, probe_nvml

    domain = f"gpu:{plan.gpu_index}"
    probe = probe_nvml([plan.gpu_index], sample_period_s=plan.sample_period_s)
    missing = [s for s in (COUNTER, SAMPLING) if domain not in probe.offers.get(s, ())]
    if missing:
        reasons = "; ".join(f"{s}: {probe.reasons.get((s, domain)) or probe.reasons.get((s, 'gpu'), '?')}"
                            for s in missing)
        if probe.release:
            probe.release()
        return _write(out_dir, {"status": "not measured", "reason": reasons})
    assert probe.build is not None
    counter, sampling = probe.build(COUNTER, (domain,)), probe.build(SAMPLING, (domain,))
    stack, observe = _observer(plan.gpu_index)
    try:
        counter.start()
        sampling.start()
        busy = _busy(plan.device)
        period = update_period(lambda: counter.read_j()[domain], plan.poll_s)
        windows = [_window("idle", counter, sampling, domain, lambda: _sleep(plan.idle_s), observe)]
        for length in plan.windows_s:
            windows.append(_window(f"matmul {length:g} s", counter, sampling, domain,
                                   functools.partial(busy, length), observe))
    finally:
        sampling.close()
        counter.close()
        stack.close()
        if probe.release:
            probe.release()
    return _write(out_dir, _result(plan, period, windows))


def _result(plan: MetersPlan, period: dict[str, Any], windows: list[dict[str, Any]]) -> dict[str, Any]:
    loaded = [w["agreement_pct"] for w in windows[1:] if w["agreement_pct"] is not None]
    return {
        "status": "measured", "gpu_index": plan.gpu_index, "gpu": _gpu_name(plan.gpu_index),
        "device": plan.device, "sample_period_s": plan.sample_period_s, **period,
        "idle_power_w": windows[0]["counter_power_w"], "idle_power_sampling_w": windows[0]["sampling_power_w"],
        "agreement_pct_mean": statistics.fmean(loaded) if loaded else None,
        "agreement_pct_max_abs": max((abs(v) for v in loaded), default=None),
        "windows": windows, "settings_changed": "none (clocks and power observed only)",
        "method": "counter: nvmlDeviceGetTotalEnergyConsumption; sampling: nvmlDeviceGetPowerUsage every "
                  f"{plan.sample_period_s:g} s, trapezoid rule; agreement = (sampling - counter) / counter",
    }


def _gpu_name(index: int) -> str:
    from nrg.dvfs.gpu import describe_gpu

    return describe_gpu(index)


def _write(out_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if result.get("windows"):
        import pandas as pd

        pd.DataFrame(result["windows"]).to_csv(out_dir / "windows.csv", index=False)
    tmp = out_dir / f".{RESULT}.tmp"
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(out_dir / RESULT)
    return result
