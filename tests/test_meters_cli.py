"""``nrg meters``: the chain and idle power, in-process and as ``python -m nrg meters``."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fakes.sysfs import FakePowercap
from nrg.commands.cli import main


def nvml_works() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return False
    pynvml.nvmlShutdown()
    return True


def test_meters_with_fake_rapl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = FakePowercap(tmp_path)
    tree.add_package(0)
    rc = main(["meters", "--idle-s", "0.05", "--sysfs-root", str(tmp_path), "--meters",
               "rapl,estimate"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "cpu: rapl" in out and "[counter]" in out
    assert "dram: estimate-dram" in out and "no readable dram zone" in out   # RAPL without DRAM: estimated
    assert "idle power over" in out and "cpu: 0.000 W [counter]" in out


def test_meters_without_rapl_estimates_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["meters", "--idle-s", "0.05", "--sysfs-root", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "skipped rapl:" in out and "powercap absent" in out
    assert "cpu: estimate" in out and "[estimated]" in out
    assert "dram: estimate-dram" in out and "DIMM rule: not a reading" in out


@pytest.mark.skipif(nvml_works(), reason="this machine has a working NVML")
def test_meters_nvml_only_without_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meters", "--meters", "nvml"]) == 1
    out = capsys.readouterr().out
    assert "NVML library not found" in out and "no energy source available" in out


@pytest.mark.parametrize("args, message", [
    (["--meters", "nvml,bogus"], "'nvml', 'rapl', 'estimate'"),
    (["--idle-s", "0"], "--idle-s=0.0 is not valid"),
    (["--idle-s", "-2"], "--idle-s=-2.0 is not valid"),
    (["--gpus", "zero"], "--gpus='zero' is not valid"),
    (["--gpus", "-1"], "GPU indices are integers >= 0"),
])
def test_bad_input(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meters", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.process
def test_python_dash_m(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "nrg", "meters", "--idle-s", "0.05",
                           "--sysfs-root", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "energy sources" in done.stdout and "cpu: estimate" in done.stdout
