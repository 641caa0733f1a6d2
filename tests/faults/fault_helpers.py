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
                if ("nrg.sweep.schedule.cell" in command or "nrg.sweep.schedule.worker" in command) and child.status() != "zombie":
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


def kept_repeats(out: Path) -> int:
    """Repeats a blocked sweep has kept so far: checkpoints of unfinished cells (see nrg.sweep.runfolder.checkpoints)."""
    import json

    total = 0
    for path in sorted((out / "repeats").glob("*.json")) if (out / "repeats").is_dir() else []:
        try:
            total += int(json.loads(path.read_text())["attempts"])
        except (OSError, ValueError, KeyError):
            continue   # replaced meanwhile
    return total


def kept_rows(out: Path) -> dict[tuple[str, int, str], float]:
    """``(cell_id, repeat, phase) -> energy_j`` of every kept repeat and every finished cell's rows."""
    import json

    from nrg.sweep.runfolder import store

    rows: dict[tuple[str, int, str], float] = {}
    for path in sorted((out / "repeats").glob("*.json")) if (out / "repeats").is_dir() else []:
        state = json.loads(path.read_text())
        for row in state["rows"]:
            rows[(state["cell_id"], int(row["repeat"]), row["phase"])] = float(row["energy_j"])
    if (out / "cells").is_dir():
        df = store.load(out)
        for r in df.itertuples():
            rows[(r.cell_id, int(r.repeat), r.phase)] = float(r.energy_j)
    return rows


BLOCKED_CELLS = 4
BLOCKED_REPEATS = 3
PHASES = 3   # rows per repeat: prefill, decode, generate


def stop_blocked_sweep(tmp_path: Path, n_kept: int, signum: int, isolated: bool = False,
                       n_cells: int = BLOCKED_CELLS) -> dict[str, Any]:
    """Start a blocked ``nrg sweep``, send ``signum`` once ``n_kept`` repeats are kept; what it left."""
    import subprocess
    import sys

    cfg = write_config(tmp_path / "c.yaml", name="blocked", output_tokens=[8], repeats=BLOCKED_REPEATS,
                       input_tokens=list(range(8, 8 + n_cells)), isolate=isolated, order="blocked")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nrg", "sweep", str(cfg), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd + ([] if isolated else ["--inline"]), env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: kept_repeats(out) >= n_kept or proc.poll() is not None, 600, f"{n_kept} kept repeats")
    children = cell_pids(proc.pid)
    finished_first = proc.poll() is not None
    proc.send_signal(signum)
    rc = proc.wait()
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    assert not finished_first, f"the sweep ended before it was stopped: nothing was tested\n{stderr[-1500:]}"
    for pid in children:
        wait_for(lambda pid=pid: gone(pid), 30, "the sweep's workers to exit")
    n_cells_done = len([p for p in (out / "cells").glob("*.parquet") if ".tmp-" not in p.name])
    return {"cfg": cfg, "out": out, "rc": rc, "stderr": stderr, "rows": kept_rows(out),
            "kept": kept_repeats(out) + n_cells_done * BLOCKED_REPEATS, "cells_done": n_cells_done}


def resume_and_audit(stopped: dict[str, Any], n_cells: int = BLOCKED_CELLS) -> dict[str, Any]:
    """Rerun in process; every kept repeat stays as it was, only the others are measured, none twice."""
    from nrg.sweep.config import parse_config
    from nrg.sweep.run import run_sweep

    measured: list[str] = []
    df = run_sweep(parse_config(stopped["cfg"]), stopped["out"], progress=False, isolate=False,
                   on_repeat=measured.append)
    out = stopped["out"]
    total = n_cells * BLOCKED_REPEATS
    assert len(measured) == total - stopped["kept"], (len(measured), stopped["kept"])
    assert not df.duplicated(["cell_id", "repeat", "phase"]).any()
    assert len(df) == total * PHASES and (df["status"] == "ok").all()
    final = {(r.cell_id, int(r.repeat), r.phase): float(r.energy_j) for r in df.itertuples()}
    changed = [key for key, energy in stopped["rows"].items() if final.get(key) != energy]
    assert changed == [], "kept repeats were measured again or lost"
    gen = df[df["phase"] == "generate"]
    assert sorted(gen["run_order"]) == list(range(total))
    assert not list((out / "claims").glob("*")), "claim files left after a completed rerun"
    assert not list((out / "repeats").glob("*")), "checkpoints left after a completed rerun"
    return {"kept": stopped["kept"], "measured_on_resume": len(measured), "of": total}
