"""nrg.sweep.runfolder.store: atomic cell files, resume bookkeeping, manifest, load()."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pandas as pd
import pytest

from nrg.sweep.runfolder import store
from nrg.sweep.runfolder.store import RunStore


def _rows(cell_id: str, n: int, status: str = "ok") -> pd.DataFrame:
    return pd.DataFrame({"cell_id": [cell_id] * n, "repeat": list(range(n)),
                         "status": [status] * n, "time_s": [0.1 * (i + 1) for i in range(n)]})


def test_creating_a_store_writes_nothing(tmp_path):
    run = RunStore.at(tmp_path / "run")
    assert run.finished() == {}
    assert not (tmp_path / "run").exists()


def test_write_then_load_returns_all_rows(tmp_path):
    run = RunStore.at(tmp_path / "run")
    run.create()
    run.write_cell("aaa", _rows("aaa", 3))
    run.write_cell("bbb", _rows("bbb", 2, status="failed"))
    df = store.load(tmp_path / "run")
    assert sorted(df["cell_id"].tolist()) == ["aaa"] * 3 + ["bbb"] * 2
    assert run.finished() == {"aaa": "ok", "bbb": "failed"}


def test_rewriting_a_cell_replaces_it_without_duplicates(tmp_path):
    run = RunStore.at(tmp_path)
    run.write_cell("aaa", _rows("aaa", 3))
    run.write_cell("aaa", _rows("aaa", 2))
    assert len(store.load(tmp_path)) == 2


@pytest.mark.process
def test_load_ignores_and_clean_removes_temporary_files(tmp_path):
    run = RunStore.at(tmp_path)
    run.write_cell("aaa", _rows("aaa", 1))
    # what a writer killed mid-write leaves: a (possibly truncated) temporary file naming its host and pid
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    partial = run.cells_dir / f"bbb.parquet{store.TMP_MARK}{host}-{dead.pid}-x1y2"
    partial.write_bytes(b"PAR1 truncated")
    live = run.cells_dir / f"ccc.parquet{store.TMP_MARK}{host}-{os.getpid()}-x1y2"   # a writer at work
    live.write_bytes(b"PAR1 half")
    assert store.load(tmp_path)["cell_id"].tolist() == ["aaa"]
    assert "bbb" not in run.finished()
    assert run.clean_temporary() == 1
    assert not partial.exists() and live.exists()


def test_missing_run_dir_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        store.load(tmp_path / "nope")


def test_unsafe_cell_id_is_refused(tmp_path):
    with pytest.raises(ValueError):
        RunStore.at(tmp_path).cell_path("../escape")


def test_manifest_keeps_run_id_and_appends_sessions(tmp_path):
    run = RunStore.at(tmp_path / "run")
    first = run.open_session("demo", "01", {"name": "demo"}, {"hostname": "h1"})
    second = run.open_session("demo", "01", {"name": "demo"}, {"hostname": "h2"})
    manifest = run.read_manifest()
    assert first == second == manifest["run_id"]
    assert first.startswith("demo-")
    assert [s["provenance"]["hostname"] for s in manifest["sessions"]] == ["h1", "h2"]


def test_load_of_some_cells_returns_only_their_rows(tmp_path):
    run = RunStore.at(tmp_path)
    for cell_id in ("aaa", "bbb", "ccc"):
        run.write_cell(cell_id, _rows(cell_id, 2))
    df = store.load(tmp_path, cell_ids=["ccc", "aaa", "zzz"])
    assert df["cell_id"].tolist() == ["aaa", "aaa", "ccc", "ccc"]
    assert list(df.columns) == ["cell_id", "status", "repeat", "time_s"]   # schema order


def test_a_session_records_its_config_pid_and_host(tmp_path):
    import os
    import socket

    run = RunStore.at(tmp_path)
    run.open_session("demo", "01", {"name": "demo"}, {})
    session = run.read_manifest()["sessions"][0]
    assert session["pid"] == os.getpid() and session["hostname"] == socket.gethostname()
    assert session["config_id"] == run.read_manifest()["configs"][0]["config_id"]


@pytest.mark.parametrize(("statuses", "expected"), [
    (["ok", "ok"], "ok"),
    (["unsupported", "ok"], "ok"),          # a final answer about the machine: --retry-failed keeps it
    (["unsupported"], "ok"),
    (["ok", "failed"], "failed"),
    (["failed"], "failed"),
])
def test_only_a_failed_row_makes_a_cell_failed(tmp_path, statuses, expected):
    run = RunStore.at(tmp_path)
    run.create()
    run.write_cell("c1", pd.DataFrame({"cell_id": "c1", "status": statuses, "phase": "finetune"}))
    assert run.finished() == {"c1": expected}
