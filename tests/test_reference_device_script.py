"""``scripts/device-reference.sh``: the one command for a lent GPU, dry-run on the fake H200 under the bare image.

The fake H200 (tests/fakes/h200.py) stands behind pynvml in every process, the
bare image's missing packages are blocked, a fake ``nvidia-smi`` logs each call;
the device is the CPU (there is no CUDA here) and ``--one-per-part`` keeps the
run to the meters and one cell per chapter.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "device-reference.sh"


def test_the_script_only_queries_the_gpu_and_installs_nothing():
    text = SCRIPT.read_text()
    commands = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    smi = [line for line in commands if re.search(r"\bnvidia-smi\b", line) and "command -v" not in line
           and "echo" not in line]
    assert smi and all("--query-gpu=" in line for line in smi)
    assert not re.search(r"\b(pip|apt-get|make)\b", "\n".join(commands))
    assert "PYTHONPATH=\"src" in text and "-m nrg reference" in text and "--archive" in text


@pytest.mark.process
def test_make_reference_is_the_bare_command_with_an_archive_and_installs_nothing():
    done = subprocess.run(["make", "--no-print-directory", "-n", "reference", "PYTHON=python3", "REF_OUT=o"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "PYTHONPATH=src python3 -m nrg reference --budget-s 480 --device cuda --out o --archive o.tar.gz"]


@pytest.mark.slow
def test_a_dry_run_on_the_fake_h200_writes_one_archive_and_sets_nothing(h200_dry_run):
    """The script's run (tests/conftest.py's h200_dry_run, shared with tests/test_reference.py)."""
    done = h200_dry_run["done"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert h200_dry_run["wall_s"] <= h200_dry_run["limit_s"]
    assert "NVIDIA H200" in done.stdout and re.search(r"torch \d+\.\d+", done.stdout)
    assert re.search(r"transformers \d+\.\d+", done.stdout) and "codecarbon: no" in done.stdout
    assert all(line.startswith("--query-gpu=") for line in h200_dry_run["smi_calls"])
    assert h200_dry_run["gpu_calls"] == []              # no GPU setting changed, by any process
    archives = h200_dry_run["archives"]
    assert len(archives) == 1 and archives[0].endswith(".tar.gz")
    names = h200_dry_run["archive_names"]
    assert "run/summary.json" in names and "run/00_how_energy_is_measured/meters.json" in names
    summary = h200_dry_run["summary"]
    assert {c["part"] for c in summary["cells"] if c["result"] == "ok"} == {
        "meters", "sequence_length", "model_comparison", "tickets", "dvfs"}
