"""A run folder shared by two sweeps or two users: live temporary files, file modes, unreadable cells."""
from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

import pytest

from nrg.commands.cli import main
from nrg.sweep.run import run_sweep
from nrg.sweep.runfolder import store
from nrg.sweep.runfolder.files import atomic_write_bytes, current_umask
from nrg.sweep.runfolder.store import RunStore

TINY = {"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}
CONFIG = {"name": "shared", "models": [TINY], "input_tokens": [8], "output_tokens": [3], "repeats": 1,
          "warmup": 0, "idle_s": 0, "roofline": False, "isolate": False, "meters": ["estimate"]}


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_sweep_start_keeps_a_live_writers_temporary_file(tmp_path):
    """Today every *.tmp-* was deleted: a second sweep removed the first one's in-flight manifest."""
    run = RunStore.at(tmp_path)
    run.create()
    host = socket.gethostname()
    live = tmp_path / f"{store.MANIFEST}{store.TMP_MARK}{host}-{os.getpid()}-abc"   # being written now
    live.write_text("{")
    stale = run.cells_dir / f"x.parquet{store.TMP_MARK}old"                       # an older nrg, 2 h ago
    stale.write_bytes(b"PAR1")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    run_sweep(CONFIG, tmp_path, progress=False)
    assert live.exists() and not stale.exists()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_are_written_with_the_umask_not_0600(tmp_path, umask, mode):
    """Today cells and manifest.json were 0600 whatever the umask: another user's sweep could not read them."""
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        atomic_write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == mode


def test_a_sweep_leaves_cells_and_manifest_readable_by_the_group(tmp_path, umask_022):
    run_sweep(CONFIG, tmp_path, progress=False)
    files = [tmp_path / store.MANIFEST, *RunStore.at(tmp_path).cell_files()]
    assert len(files) == 2
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}


def test_a_cell_file_unreadable_for_permission_is_not_damaged_and_never_moved(tmp_path, monkeypatch, capsys):
    """Today a second user's sweep moved every cell it could not read to cells/corrupt/."""
    run_sweep(CONFIG, tmp_path, progress=False)
    (cell,) = RunStore.at(tmp_path).cell_files()
    before = cell.read_bytes()
    if os.geteuid() == 0:    # root reads everything: the OS's answer for another user is faked here
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, m, *a, **k: False if Path(p) == cell and m & os.R_OK
                            else real_access(p, m, *a, **k))
    else:
        cell.chmod(0)
    config = tmp_path.parent / f"{tmp_path.name}.yaml"
    import yaml

    config.write_text(yaml.safe_dump(CONFIG))
    assert main(["sweep", str(config), "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "not readable by this user" in err and "not damaged" in err and cell.name in err
    cell.chmod(0o644)
    assert cell.read_bytes() == before and not (tmp_path / "cells" / "corrupt").exists()
