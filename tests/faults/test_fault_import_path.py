"""Cells run with a clean import path: modules in the working directory never shadow the standard library."""
from __future__ import annotations

import subprocess
import sys

from fault_helpers import child_env, config

from nrg.sweep.run import run_sweep
from nrg.sweep.schedule.cell import command, import_paths

SHADOW = "raise SystemExit('the {name}.py of the working directory was imported')\n"


def test_shadowing_modules_in_the_working_directory_are_not_imported(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    for name in ("json", "resource", "random", "nrg_shadow_probe"):
        (work / f"{name}.py").write_text(SHADOW.format(name=name))
    monkeypatch.chdir(work)
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])
    df = run_sweep(config(isolate=True), tmp_path / "run", progress=False)
    assert (df["status"] == "ok").all(), df["error"].iloc[0]
    assert df["peak_mem_bytes"].notna().all()          # `resource` (peak RSS) is the stdlib's


def test_cell_command_is_isolated_and_imports_nrg_from_its_own_folder(tmp_path, monkeypatch):
    (tmp_path / "nrg_shadow_probe.py").write_text("")
    monkeypatch.chdir(tmp_path)
    cmd = command(tmp_path / "spec.json")
    assert cmd[1] == "-I"
    probe = ("import sys, json; sys.path[:0] = json.loads(sys.argv[1]); import nrg, importlib.util; "
             "print(nrg.__file__); print(importlib.util.find_spec('nrg_shadow_probe'))")
    out = subprocess.run([sys.executable, "-I", "-c", probe, cmd[4]], capture_output=True, text=True,
                         check=True, env=child_env()).stdout.splitlines()
    assert out[0].startswith(import_paths()[0]) and out[1] == "None"
