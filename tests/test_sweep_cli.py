"""``nrg sweep``: errors, a run, and resume after the process is really killed with SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nrg.commands.cli import main
from nrg.sweep.runfolder import store

TINY = {"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}


def write_config(path: Path, **changes) -> Path:
    # no interference retries: the row counts below must not depend on this machine's load
    cfg = {"name": "cli", "chapter": "02", "models": [TINY], "input_tokens": [8], "output_tokens": [4],
           "repeats": 2, "warmup": 0, "idle_s": 0, "roofline": False, "interference": {"max_retries": 0}}
    cfg.update(changes)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_unknown_key_exits_2_lists_valid_keys_and_writes_nothing(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", colour="blue")
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "'colour' is not valid" in err and "valid keys: name, chapter, models" in err
    assert not (tmp_path / "run").exists()


def test_unknown_model_lists_the_known_ones(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", models=["llama-9000"])
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "run")]) == 2
    assert "known models: 'smollm2-135m'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_inline_run_prints_a_summary(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", input_tokens=[8, 12])
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "run"), "--inline", "--no-progress"]) == 0
    assert "2 cells (2 ok), 12 rows" in capsys.readouterr().out
    df = store.load(tmp_path / "run")
    assert (df["chapter"] == "02").all() and len(df) == 12


def _files(cells: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in cells.glob("*.parquet")} if cells.is_dir() else {}


@pytest.mark.parametrize("inline", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["inline", "isolated"])
@pytest.mark.process
def test_sweep_killed_with_sigkill_resumes_without_lost_or_duplicate_rows(tmp_path, inline):
    """Sequential order: killed between cells, finished cells stay and are skipped on resume."""
    n_cells = 6 if inline else 3
    cfg = write_config(tmp_path / "c.yaml", input_tokens=list(range(8, 8 + n_cells)), output_tokens=[8],
                       repeats=3, order="sequential")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nrg", "sweep", str(cfg), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd + (["--inline"] if inline else []), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    children: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        done = _files(out / "cells")
        children = _running_cells(proc.pid, done)
        if done and (inline or children):   # isolated: kill while the next cell's process runs
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)                      # no chance to clean up
    proc.wait()
    before = _files(out / "cells")
    assert 1 <= len(before) < n_cells, proc.stderr.read().decode()[-2000:]
    if not inline:
        assert children
        _wait_gone(children)                               # an isolated cell dies with its sweep
        assert _files(out / "cells") == before             # ... and writes nothing after

    assert main(["sweep", str(cfg), "--out", str(out), "--no-progress"]
                + (["--inline"] if inline else [])) == 0
    after = _files(out / "cells")
    assert len(after) == n_cells
    assert all(after[name] == t for name, t in before.items())   # finished cells were skipped
    df = store.load(out)
    assert not df.duplicated(["cell_id", "repeat", "phase"]).any()
    assert (df["status"] == "ok").all()
    assert len(df) == n_cells * 3 * 3                      # cells x repeats x phases
    assert df["run_id"].nunique() == 1
    assert not [p for p in (out / "cells").iterdir() if store.TMP_MARK in p.name]


@pytest.mark.slow
@pytest.mark.process
def test_blocked_sweep_killed_with_sigkill_leaves_no_worker_and_resumes_whole(tmp_path):
    """Blocked order: kill -9 while workers hold models; they die with it, the rerun measures every cell once."""
    import psutil

    n_cells = 3
    cfg = write_config(tmp_path / "c.yaml", input_tokens=list(range(8, 8 + n_cells)), output_tokens=[8],
                       repeats=3)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "nrg", "sweep", str(cfg), "--out", str(out), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, workers = time.monotonic() + 120, []
    while time.monotonic() < deadline and proc.poll() is None and len(workers) < 2:
        try:
            workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)
                       if any("nrg.sweep.schedule.worker" in a for a in c.cmdline())]
        except psutil.Error:
            workers = []
        time.sleep(0.05)
    assert len(workers) >= 2, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no workers"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _wait_gone(workers, timeout_s=15)                      # no orphan keeps a model (or a setting)
    before = _files(out / "cells")
    assert main(["sweep", str(cfg), "--out", str(out), "--no-progress"]) == 0
    df = store.load(out)
    assert df["cell_id"].nunique() == n_cells and (df["status"] == "ok").all()
    assert not df.duplicated(["cell_id", "repeat", "phase"]).any()
    assert len(df) == n_cells * 3 * 3
    assert all(_files(out / "cells")[name] == t for name, t in before.items())
    assert df["run_order"].notna().all()


def _running_cells(pid: int, done: dict[str, int]) -> list[int]:
    """Cell processes of sweep ``pid`` measuring a cell that has no file yet."""
    import psutil

    found = []
    try:
        for child in psutil.Process(pid).children(recursive=True):
            spec = next((a for a in child.cmdline() if a.endswith(".json")), "")
            if spec and f"{Path(spec).stem}.parquet" not in done:
                found.append(child.pid)
    except psutil.Error:
        pass
    return found


def _wait_gone(pids: list[int], timeout_s: float = 3.0) -> None:
    import psutil

    deadline = time.monotonic() + timeout_s
    alive = [p for p in pids if psutil.pid_exists(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not alive, f"cell processes still running after their sweep was killed: {alive}"


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("0 all cells ok", "1 some cells failed", "2 bad input", "130 interrupted"):
        assert phrase in text


@pytest.mark.process
def test_a_failed_cell_exits_1_and_a_config_of_any_name_is_read_as_a_file(tmp_path, capsys):
    cfg = write_config(tmp_path / "conf.txt", cell_timeout_s=0.2)   # not parsed as YAML text
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    assert "1 cell (1 failed)" in capsys.readouterr().out
    assert "cell_timeout_s=0.2" in store.load(tmp_path / "run")["error"].iloc[0]


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    cfg = write_config(tmp_path / "c.yaml", idle_s=float("nan"))
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["nrg sweep: error: idle_s=nan is not valid; it must be a finite "
                                        "number >= 0"]
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "run"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err

    from nrg.sweep import run

    def crash(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(run, "run_sweep", crash)   # an unexpected error, not a user's mistake
    cfg = write_config(tmp_path / "ok.yaml")
    assert main(["sweep", str(cfg), "--out", str(tmp_path / "run")]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RuntimeError: disk on fire (rerun with --debug" in err
    assert not (tmp_path / "run").exists()
