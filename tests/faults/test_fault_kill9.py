"""``kill -9`` of a sweep at randomized moments: 0 lost, 0 duplicated, 0 corrupt, manifest consistent.

Ten seeded runs of ``nrg sweep`` (tiny random-weight cells; 8 in-process, 2
with isolated cell processes) are each killed with SIGKILL at a random moment:
the seed draws how many cells must be finished first (0 = any time after the
manifest is written) and a random delay after that, so kills land at
start-up, between cells, and while a cell's file is being written, whatever
the machine's load. Then the sweep is resumed and the run folder is audited:

* lost: a cell file present at the kill is gone or was rewritten, or a cell
  of the config is missing after the resume;
* duplicated: a (cell_id, repeat, phase) row twice;
* corrupt: a cell file that does not read back;
* orphans: a cell process still running after its sweep was killed;
* manifest: one run_id, the same in the manifest and in every row;
* temporary_left: temporary files, kept repeats or claims left after the resume.

In blocked order cells finish only in the last block, so the random test
rarely kills between cells: the blocked tests below kill (and the SIGINT tests
in ``test_fault_signals.py`` interrupt) a sweep half-way through its repeats
and check that every finished repeat is kept and none is measured twice.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fault_helpers import (
    BLOCKED_CELLS,
    BLOCKED_REPEATS,
    cell_pids,
    child_env,
    gone,
    resume_and_audit,
    stop_blocked_sweep,
    wait_for,
    write_config,
)

from nrg.sweep.config import parse_config
from nrg.sweep.run import run_sweep
from nrg.sweep.runfolder import store

SEEDS = range(10)
REPEATS = 2
PHASES = 3   # prefill, decode, generate


def _files(cells: Path) -> dict[str, tuple[int, int]]:
    if not cells.is_dir():
        return {}
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in cells.glob("*.parquet")
            if store.TMP_MARK not in p.name}


def _corrupt(cells: Path) -> list[str]:
    import pyarrow.parquet as pq

    bad = []
    for name in _files(cells):
        try:
            pq.read_table(cells / name)
        except Exception:  # any read failure is corruption
            bad.append(name)
    return bad


def _kill_at_random_moment(cfg: Path, out: Path, rng: random.Random, isolated: bool,
                           n_cells: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "nrg", "sweep", str(cfg), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd + ([] if isolated else ["--inline"]), env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    after_cells = rng.randint(0, n_cells - 1)
    delay = rng.uniform(0.0, 2.0) if after_cells == 0 else rng.uniform(0.0, 0.5)
    wait_for(lambda: (out / store.MANIFEST).exists() or proc.poll() is not None, 300, "the manifest")
    wait_for(lambda: len(_files(out / "cells")) >= after_cells or proc.poll() is not None, 300,
             f"{after_cells} finished cells")
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    children = cell_pids(proc.pid)
    finished_first = proc.poll() is not None
    proc.kill()
    proc.wait()
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    orphans = 0
    for pid in children:
        try:
            wait_for(lambda pid=pid: gone(pid), 30, "the cell to exit")
        except AssertionError:
            orphans += 1
    return {"delay_s": round(delay, 2), "after_cells": after_cells, "orphans": orphans,
            "finished_before_kill": finished_first, "stderr": stderr[-1500:]}


def _audit(cfg_path: Path, out: Path, before: dict[str, tuple[int, int]]) -> dict[str, int]:
    cfg = parse_config(cfg_path)
    ids = {c.cell_id for c in cfg.cells()}
    df = run_sweep(cfg, out, progress=False, isolate=False)            # resume
    after = _files(out / "cells")
    lost = sum(1 for name, stamp in before.items() if after.get(name) != stamp)
    lost += len(ids - {name[: -len(store.SUFFIX)] for name in after})
    manifest = json.loads((out / store.MANIFEST).read_text())
    consistent = (df["run_id"].nunique() == 1 and df["run_id"].iloc[0] == manifest["run_id"]
                  and (df["status"] == "ok").all() and len(df) == len(ids) * REPEATS * PHASES)
    leftovers = [p.name for p in (out / "cells").iterdir() if store.TMP_MARK in p.name]
    leftovers += [p.name for p in (out / "repeats").glob("*")]     # kept repeats of a finished run
    leftovers += [p.name for p in (out / "claims").glob("*")]      # claims of the killed sweep
    return {"lost": lost, "duplicated": int(df.duplicated(["cell_id", "repeat", "phase"]).sum()),
            "corrupt": len(_corrupt(out / "cells")), "manifest_inconsistent": int(not consistent),
            "temporary_left": len(leftovers)}


@pytest.mark.timeout(1200)   # 10 seeds, each a killed `nrg sweep` and its audit
def test_kill9_at_random_moments(tmp_path: Path) -> None:
    tally = {"kills": 0, "mid_run": 0, "lost": 0, "duplicated": 0, "corrupt": 0, "orphans": 0,
             "manifest_inconsistent": 0, "temporary_left": 0}
    rows = []
    for seed in SEEDS:
        rng = random.Random(seed)
        isolated = seed in (3, 7)
        n_cells = 2 if isolated else 4
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        cfg = write_config(folder / "c.yaml", name=f"kill{seed}", output_tokens=[8], repeats=REPEATS,
                           input_tokens=list(range(8, 8 + n_cells)), isolate=isolated)
        out = folder / "run"
        kill = _kill_at_random_moment(cfg, out, rng, isolated, n_cells)
        before = _files(out / "cells")
        corrupt_at_kill = len(_corrupt(out / "cells"))
        audit = _audit(cfg, out, before)
        audit["corrupt"] += corrupt_at_kill
        tally["kills"] += 1
        tally["mid_run"] += int(0 < len(before) < n_cells)
        tally["orphans"] += kill["orphans"]
        for key in ("lost", "duplicated", "corrupt", "manifest_inconsistent", "temporary_left"):
            tally[key] += audit[key]
        rows.append({"seed": seed, "isolated": isolated, "delay_s": kill["delay_s"],
                     "after_cells": kill["after_cells"], "cells_done_at_kill": len(before),
                     "of": n_cells, **audit, "orphans": kill["orphans"]})
        assert not any(audit.values()) and not kill["orphans"], (rows[-1], kill["stderr"])
    print("\nkill -9 runs:\n" + "\n".join(json.dumps(r) for r in rows))
    print("kill -9 tally:", json.dumps(tally))
    assert tally["kills"] == len(SEEDS)
    assert tally["mid_run"] >= 1, "no kill landed while cells were being written: nothing was tested"


def test_kill9_in_blocked_order_keeps_every_finished_repeat(tmp_path: Path) -> None:
    """Killed in the middle of a blocked sweep (all cells finish in the last block): the repeats stay."""
    import signal

    stopped = stop_blocked_sweep(tmp_path, 5, signal.SIGKILL)
    assert stopped["rc"] == -signal.SIGKILL and 5 <= stopped["kept"] < BLOCKED_CELLS * BLOCKED_REPEATS
    print("\nkill -9 in blocked order:", json.dumps(resume_and_audit(stopped)))


WORKER_KILLED_IN_A_REQUEST = {"warmup": 1_000_000}   # prepare never ends by itself


def test_a_worker_dies_promptly_when_its_sweep_is_killed_in_the_middle_of_a_request(tmp_path: Path) -> None:
    """The worker is busy (warming up) when the sweep gets kill -9: it must not finish the request first."""
    import psutil

    cfg = write_config(tmp_path / "c.yaml", name="orphan", isolate=True, order="blocked",
                       **WORKER_KILLED_IN_A_REQUEST)
    proc = subprocess.Popen([sys.executable, "-m", "nrg", "sweep", str(cfg), "--out", str(tmp_path / "run"),
                             "--no-progress"], env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        pid = wait_for(lambda: cell_pids(proc.pid) or proc.poll() is not None, 300, "the worker")
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        worker = psutil.Process(pid[0])
        wait_for(lambda: worker.cpu_times().user > 2.0, 300, "the worker to be busy")   # importing, loading
    finally:
        proc.kill()
        proc.wait()
    killed = time.monotonic()
    cpu_at_kill = sum(worker.cpu_times()[:2])
    try:
        wait_for(lambda: gone(worker.pid), 30, "the orphaned worker to exit")
    finally:
        if not gone(worker.pid):
            worker.kill()   # never leave it spinning after a failed test
    lived_s = time.monotonic() - killed
    print(f"\nworker lived {lived_s:.1f} s after kill -9 of its sweep")
    assert lived_s < 8.0, f"the worker lived {lived_s:.1f} s after its sweep (cpu at kill {cpu_at_kill:.1f} s)"
