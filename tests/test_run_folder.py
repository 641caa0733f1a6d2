"""A run folder over time: manifest under a lock, rebuilt when lost, configs kept, cells claimed."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nrg.commands.cli import main
from nrg.sweep.run import run_sweep
from nrg.sweep.runfolder import locks, store
from nrg.sweep.runfolder.store import RunStore

TINY = {"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}
ROOT = Path(__file__).resolve().parents[1]


def config(**changes) -> dict:
    cfg = {"name": "folder", "models": [TINY], "input_tokens": [8], "output_tokens": [3], "repeats": 1,
           "warmup": 0, "idle_s": 0, "roofline": False, "isolate": False}
    cfg.update(changes)
    return cfg


def _rows(cell_id: str, run_id: str) -> pd.DataFrame:
    return pd.DataFrame({"run_id": [run_id], "cell_id": [cell_id], "status": ["ok"], "repeat": [0]})


# ------------------------------------------------------------------ manifest


def _open_sessions(run_dir: str, worker: int, n: int) -> None:
    run = RunStore.at(run_dir)
    for i in range(n):
        run.open_session("race", "", {"name": "race"}, {"hostname": f"w{worker}-{i}"})


@pytest.mark.process
def test_concurrent_sessions_lose_no_record(tmp_path):
    """8 processes x 25 sessions at once: all 200 records kept, one run_id."""
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_open_sessions, args=(str(tmp_path), w, 25)) for w in range(8)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    manifest = RunStore.at(tmp_path).read_manifest()
    records = [s["provenance"]["hostname"] for s in manifest["sessions"]]
    assert len(records) == 200 and len(set(records)) == 200
    assert len(manifest["configs"]) == 1


def test_a_missing_manifest_is_rebuilt_with_the_run_id_of_the_rows(tmp_path):
    run = RunStore.at(tmp_path)
    run.write_cell("aaa", _rows("aaa", "old-20250101T000000Z"))
    with pytest.warns(UserWarning, match="missing; rebuilt.*'old-20250101T000000Z'"):
        run_id = run.open_session("new", "", {"name": "new"}, {})
    assert run_id == "old-20250101T000000Z" == run.read_manifest()["run_id"]
    assert run.read_manifest()["rebuilt"][0]["reason"] == "missing"


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]", '{"sessions": []}'],
                         ids=["garbage", "empty", "a list", "no run_id"])
def test_an_unreadable_manifest_is_kept_aside_and_rebuilt(tmp_path, text):
    run = RunStore.at(tmp_path)
    run.write_cell("aaa", _rows("aaa", "old-1"))
    (tmp_path / store.MANIFEST).write_text(text)
    with pytest.warns(UserWarning, match="unreadable"):
        assert run.read_manifest() is None
    with pytest.warns(UserWarning, match="unreadable.*rebuilt.*'old-1'"):
        assert run.open_session("x", "", {}, {}) == "old-1"
    kept = list(tmp_path.glob(f"{store.MANIFEST}.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == text


def test_a_sweep_with_a_deleted_manifest_keeps_the_run_id(tmp_path):
    first = run_sweep(config(), tmp_path, progress=False)
    (tmp_path / store.MANIFEST).unlink()
    with pytest.warns(UserWarning, match="rebuilt"):
        second = run_sweep(config(input_tokens=[8, 9]), tmp_path, progress=False)
    assert second["run_id"].nunique() == 1
    assert second["run_id"].iloc[0] == first["run_id"].iloc[0] == RunStore.at(tmp_path).read_manifest()["run_id"]


def test_a_changed_config_is_a_new_entry_not_an_overwrite(tmp_path):
    run = RunStore.at(tmp_path)
    a, b = {"name": "a", "input_tokens": [8]}, {"name": "a", "input_tokens": [9]}
    for cfg in (a, a, b, a):
        run.open_session("a", "01", cfg, {})
    manifest = run.read_manifest()
    assert [c["config"] for c in manifest["configs"]] == [a, b]
    assert all(c["first_seen"] for c in manifest["configs"])
    ids = [c["config_id"] for c in manifest["configs"]]
    assert [s["config_id"] for s in manifest["sessions"]] == [ids[0], ids[0], ids[1], ids[0]]
    assert "config" not in manifest


def test_a_manifest_of_the_first_format_keeps_its_config_as_the_first_entry(tmp_path):
    old = {"run_id": "r-1", "name": "a", "chapter": "", "config": {"name": "a", "input_tokens": [8]},
           "sessions": [{"started_at": "20250101T000000Z", "config": {}, "provenance": {}}]}
    (tmp_path / store.MANIFEST).write_text(json.dumps(old))
    assert RunStore.at(tmp_path).open_session("a", "", {"name": "a", "input_tokens": [9]}, {}) == "r-1"
    manifest = RunStore.at(tmp_path).read_manifest()
    assert [c["config"]["input_tokens"] for c in manifest["configs"]] == [[8], [9]]
    assert manifest["configs"][0]["first_seen"] == "20250101T000000Z"
    assert len(manifest["sessions"]) == 2


# ------------------------------------------------------------------ current config vs the folder


def test_rows_and_summary_are_of_the_current_config(tmp_path, capsys):
    six = run_sweep(config(input_tokens=[8, 9, 10], output_tokens=[2, 3]), tmp_path, progress=False)
    assert six["cell_id"].nunique() == 6 and six.attrs["other_cells"] == 0
    one = run_sweep(config(input_tokens=[8], output_tokens=[2]), tmp_path, progress=False)
    assert one["cell_id"].nunique() == 1 and one.attrs["other_cells"] == 5
    assert store.load(tmp_path)["cell_id"].nunique() == 6      # the folder keeps them all

    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(config(input_tokens=[8], output_tokens=[2])))
    assert main(["sweep", str(path), "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path}: 1 cell (1 ok), {len(one)} rows" in out
    assert "also holds 5 cells of other configs" in out and "6 cells" not in out


# ------------------------------------------------------------------ claims


def test_a_claim_is_exclusive_until_released(tmp_path):
    run = RunStore.at(tmp_path)
    with run.claim("aaa") as first:
        assert first.ours and (run.claims_dir / "aaa").is_file()
        second = run.claim("aaa")
        assert not second.ours and second.holder["pid"] == os.getpid()
        assert f"pid {os.getpid()} on {socket.gethostname()}" in second.describe()
    assert not (run.claims_dir / "aaa").exists()
    with run.claim("aaa") as third:
        assert third.ours and third.took_over is None


def _holder(**changes) -> dict:
    return {**locks.me(), **changes}


def test_which_claims_are_stale():
    assert not locks.is_stale(_holder())                                 # this live process
    assert locks.is_stale(_holder(pid=2**22 + 12345))                    # no such pid
    assert locks.is_stale(_holder(proc_start="1"))                       # pid reused
    assert locks.is_stale(_holder(boot_id="an-earlier-boot"))            # machine rebooted
    assert not locks.is_stale(_holder(hostname="elsewhere", pid=2**22 + 12345))  # cannot tell


def test_an_unreadable_claim_is_taken_over(tmp_path):
    run = RunStore.at(tmp_path)
    run.claims_dir.mkdir()
    (run.claims_dir / "aaa").write_text("{half a rec")
    with run.claim("aaa") as claim:
        assert claim.ours and claim.took_over == {}


CLAIM_AND_SLEEP = textwrap.dedent("""
    import sys, time
    from nrg.sweep.runfolder.store import RunStore
    claim = RunStore.at(sys.argv[1]).claim("aaa")
    assert claim.ours
    print("claimed", flush=True)
    time.sleep(120)
""")


@pytest.mark.process
def test_a_claim_of_a_process_killed_with_sigkill_is_taken_over(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", CLAIM_AND_SLEEP, str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "claimed"
    run = RunStore.at(tmp_path)
    assert not run.claim("aaa").ours                       # alive: not ours
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with run.claim("aaa") as claim:
        assert claim.ours and claim.took_over["pid"] == proc.pid


def test_a_sweep_skips_a_cell_another_live_sweep_claimed(tmp_path):
    cfg = config(input_tokens=[8, 9])
    run = RunStore.at(tmp_path)
    from nrg.sweep.config import parse_config

    busy_id = parse_config(cfg).cells()[0].cell_id
    run.create()
    parent = os.getppid()                                  # a live process that is not this one
    holder = _holder(pid=parent, proc_start=locks.process_start(parent)[1])
    (run.claims_dir / busy_id).write_text(json.dumps(holder))
    df = run_sweep(cfg, tmp_path, progress=False)
    assert set(df["cell_id"]) == {parse_config(cfg).cells()[1].cell_id}
    assert list(df.attrs["busy_cells"]) == [busy_id]
    assert not run.cell_path(busy_id).exists()


SWEEP_WHEN_GO = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from nrg.sweep.run import run_sweep
    from nrg.sweep.runfolder.store import RunStore

    config, out, go, log = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    write = RunStore.write_cell
    def logged(self, cell_id, frame):           # which cells this process measured
        with open(log, "a") as fh:
            fh.write(cell_id + "\\n")
        return write(self, cell_id, frame)
    RunStore.write_cell = logged
    import torch, transformers, nrg.models.load, nrg.workloads.generation  # noqa: F401, E401
    # ^ imported before the start, not by the first cell: a process still importing when the other had
    #   measured every cell was the one way this test failed (one sweep took part, on a fast run)
    while not go.exists():
        time.sleep(0.01)
    df = run_sweep(config, out, progress=False)
    print(json.dumps({"busy": sorted(df.attrs["busy_cells"]), "cells": sorted(set(df["cell_id"]))}))
""")


@pytest.mark.slow
@pytest.mark.process
def test_two_sweeps_on_one_folder_measure_each_cell_once(tmp_path):
    cfg = config(input_tokens=[8, 9, 10], output_tokens=[4, 6], repeats=2)
    n_cells = 6
    go, out = tmp_path / "go", tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [subprocess.Popen([sys.executable, "-c", SWEEP_WHEN_GO, json.dumps(cfg), str(out), str(go),
                               str(tmp_path / f"log{i}")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    time.sleep(0.5)
    go.touch()
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    measured = [set((tmp_path / f"log{i}").read_text().split()) if (tmp_path / f"log{i}").exists()
                else set() for i in range(2)]
    assert measured[0] and measured[1]                    # both sweeps took part
    assert not measured[0] & measured[1]                  # no cell measured twice
    assert len(measured[0] | measured[1]) == n_cells      # every cell measured
    for result, mine in zip(results, measured, strict=True):
        assert set(result["busy"]) | set(result["cells"]) >= mine
    df = store.load(out)
    assert df["cell_id"].nunique() == n_cells and not df.duplicated(["cell_id", "repeat", "phase"]).any()
    assert not list((out / "claims").iterdir())           # every claim released
