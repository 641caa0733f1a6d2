"""Shared by the fault tests: a tiny sweep config, fake hardware for cell processes, waiting."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from nrg.sweep.config import KEYS

TESTS_DIR = Path(__file__).resolve().parents[1]
SRC_DIR = TESTS_DIR.parent / "src"
TINY = {"name": "gpt2", "weights": "random", "tiny": True, "layers": 1}
FOREVER = 1_000_000   # repeats: a cell that runs until it is stopped


def config(**changes: Any) -> dict[str, Any]:
    """A sweep of tiny random-weight cells, fast on a CPU; ``changes`` override keys."""
    cfg: dict[str, Any] = {
        "name": "faults", "models": [TINY], "input_tokens": [8], "output_tokens": [4],
        "repeats": 2, "warmup": 0, "idle_s": 0, "roofline": False, "meters": ["estimate"],
        # row counts must not depend on the machine's load: no redone (interference-flagged) repeats
        "interference": {"max_retries": 0},
    }
    if "allow_hardware_settings" in KEYS:   # consent key of another change; harmless when absent
        cfg["allow_hardware_settings"] = True
    cfg.update(changes)
    return cfg


def write_config(path: Path, **changes: Any) -> Path:
    path.write_text(yaml.safe_dump(config(**changes)))
    return path


def child_env() -> dict[str, str]:
    """PYTHONPATH for cell and sweep processes: the package and ``tests/`` (for ``fakes``)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC_DIR), str(TESTS_DIR)])}


def wait_for(predicate: Callable[[], Any], timeout_s: float = 120.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def cell_pids(parent_pid: int) -> list[int]:
    """Live cell processes started by the sweep process ``parent_pid``."""
    import psutil

    found = []
    try:
        for child in psutil.Process(parent_pid).children(recursive=True):
            try:
                command = " ".join(child.cmdline())   # a one-shot cell process, or a cell's worker
                if ("nrg.sweep.cell" in command or "nrg.sweep.worker" in command) and child.status() != "zombie":
                    found.append(child.pid)
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return found


def gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _read_khz(path: Path) -> int:
    """A fake sysfs value; read again while a cell is rewriting it (the file is empty for a moment).

    Real sysfs writes are atomic; the fake tree is plain files, truncated then written.
    """
    for _ in range(200):
        text = path.read_text().strip()
        if text:
            return int(text)
        time.sleep(0.005)
    raise AssertionError(f"{path} stayed empty")


def hardware(env: Any) -> dict[str, Any]:
    """What a measurement would run at: GPU locks and limit (fake NVML), CPU caps (fake sysfs)."""
    state = env.fake.state
    caps = [_read_khz(d / "cpufreq" / "scaling_max_freq") for d in sorted(env.cpufreq.glob("cpu[0-9]*"))]
    return {"gpu_locked": state["gpu_locked"], "mem_locked": state["mem_locked"],
            "power_limit_mw": state["power_limit_mw"], "cpu_max_khz": caps}
