"""What machine produced a result: written into every row and every run manifest.

A number without its hardware and software is not reproducible, so every
result carries CPU, memory, GPU, driver, clocks, power limit, library versions,
the git SHA of this code, the hostname and a UTC timestamp.  Everything here
degrades to ``None`` (never raises) on a machine that lacks a piece: a CPU-only
box has no GPU, a wheel install has no git checkout.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import nrg
from nrg.errors import check_int

if TYPE_CHECKING:
    from nrg.meters.nvml import Nvml

T = TypeVar("T")

_REPO_ROOT = Path(__file__).resolve().parents[3]


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_cores() -> int:
    """Cores this process may run on (affinity), which is what a workload gets."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def memory_bytes() -> int | None:
    """Total physical memory in bytes."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=4)
def git_sha(root: str | Path | None = None) -> str | None:
    """The commit of this checkout (``+dirty`` when tracked files differ), None outside git.

    Reads only: ``git status`` refreshes ``.git/index`` (a write outside
    ``--out``, and a lock another git command may trip over), so it runs with
    ``--no-optional-locks`` and ``GIT_OPTIONAL_LOCKS=0``.
    """
    folder = str(root if root is not None else _REPO_ROOT)
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        sha = subprocess.run(
            ["git", "-C", folder, "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True, env=env,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "-C", folder, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True, env=env,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha


def gpu_info(nvml_module: Nvml | None = None) -> list[dict[str, Any]]:
    """Name, driver, current clocks and power limit of each NVIDIA GPU; [] if none.

    ``nvml_module`` lets tests pass a fake ``pynvml``; by default the real one.
    """
    try:
        from nrg.meters.nvml import load_nvml

        nvml = load_nvml(nvml_module)
        nvml.nvmlInit()
    except Exception:  # no library, no driver, no GPU: a CPU-only machine
        return []
    gpus: list[dict[str, Any]] = []
    try:
        driver = _decode(nvml.nvmlSystemGetDriverVersion())
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            gpus.append({
                "index": index,
                "name": _decode(nvml.nvmlDeviceGetName(handle)),
                "driver": driver,
                "gpu_clock_mhz": _try(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_GRAPHICS),
                "mem_clock_mhz": _try(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM),
                "power_limit_w": _scale(_try(nvml.nvmlDeviceGetPowerManagementLimit, handle), 1e-3),
                "memory_bytes": getattr(_try(nvml.nvmlDeviceGetMemoryInfo, handle), "total", None),
            })
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
    return gpus


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _try(fn: Callable[..., T], *args: object) -> T | None:
    try:
        return fn(*args)
    except Exception:  # a query this GPU or driver does not support
        return None


def _scale(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def provenance(nvml_module: Nvml | None = None) -> dict[str, Any]:
    """Flat provenance columns for a result row (see ARCHITECTURE.md)."""
    gpus = gpu_info(nvml_module)
    first = gpus[0] if gpus else {}
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_cores": cpu_cores(),
        "mem_bytes": memory_bytes(),
        "gpu": ", ".join(g["name"] for g in gpus) or None,
        "gpu_count": len(gpus),
        "driver": first.get("driver"),
        "gpu_clock_mhz_current": first.get("gpu_clock_mhz"),
        "mem_clock_mhz_current": first.get("mem_clock_mhz"),
        "power_limit_w_current": first.get("power_limit_w"),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "nrg": nrg.__version__,
        "git_sha": git_sha(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def memory_bandwidth_bytes_per_s(size_mb: int = 256, repeats: int = 5) -> float:
    """Sustained memory bandwidth from a STREAM-like copy, best of ``repeats``.

    Decode is memory-bound: its roofline needs the bytes per second this
    machine really moves, not a datasheet figure.  A copy reads and writes
    each byte, so it moves ``2 * size`` bytes.  The array must be much larger
    than the last-level cache, hence 256 MB by default.
    """
    import numpy as np

    check_int("size_mb", size_mb)
    check_int("repeats", repeats)
    n = size_mb * 1024 * 1024 // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch pages before timing
    best_s = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        best_s = min(best_s, time.perf_counter() - start)
    return 2 * src.nbytes / best_s
