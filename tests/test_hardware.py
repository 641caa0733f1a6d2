"""Provenance must be complete on a CPU-only box and pick up GPUs through NVML."""
from __future__ import annotations

import types

import pytest

from nrg.meters import hardware


class _FakeNvml(types.SimpleNamespace):
    """The few NVML calls provenance makes, for two fake GPUs."""

    NVML_CLOCK_GRAPHICS = 0
    NVML_CLOCK_MEM = 2

    def __init__(self) -> None:
        super().__init__(shutdown_called=False)

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: self.shutdown_called = True
    def nvmlSystemGetDriverVersion(self) -> bytes: return b"580.65"
    def nvmlDeviceGetCount(self) -> int: return 2
    def nvmlDeviceGetHandleByIndex(self, i: int) -> int: return i
    def nvmlDeviceGetName(self, h: int) -> str: return "NVIDIA H200"
    def nvmlDeviceGetClockInfo(self, h: int, kind: int) -> int: return 1980 if kind == 0 else 3201
    def nvmlDeviceGetPowerManagementLimit(self, h: int) -> int: return 700_000
    def nvmlDeviceGetMemoryInfo(self, h: int) -> object:
        raise RuntimeError("not supported on this fake")


def test_provenance_on_this_machine_has_every_column() -> None:
    prov = hardware.provenance()
    for key in ("hostname", "cpu", "cpu_cores", "torch", "transformers", "nrg", "started_at", "git_sha"):
        assert key in prov
    assert prov["cpu_cores"] >= 1
    assert prov["started_at"].endswith("+00:00")  # UTC


@pytest.mark.process   # runs `git rev-parse` for the expected commit
def test_provenance_names_the_commit_of_the_checkout_it_runs_from() -> None:
    """Run from a git checkout (as the tests are), git_sha is that checkout's HEAD, not "unknown".

    The repository root is found from the module's own place in ``src/nrg``; a module moved
    to another depth would silently lose the commit from every row.
    """
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert hardware.provenance()["git_sha"].split("+")[0] == head


def test_gpu_info_reads_fake_nvml_and_shuts_down() -> None:
    fake = _FakeNvml()
    gpus = hardware.gpu_info(fake)
    assert [g["index"] for g in gpus] == [0, 1]
    assert gpus[0]["driver"] == "580.65"
    assert gpus[0]["gpu_clock_mhz"] == 1980 and gpus[0]["mem_clock_mhz"] == 3201
    assert gpus[0]["power_limit_w"] == pytest.approx(700.0)
    assert gpus[0]["memory_bytes"] is None  # unsupported query degrades to None
    assert fake.shutdown_called
    prov = hardware.provenance(fake)
    assert prov["gpu"] == "NVIDIA H200, NVIDIA H200" and prov["gpu_count"] == 2


def test_no_nvml_library_means_no_gpus() -> None:
    class Broken:
        def nvmlInit(self) -> None:
            raise OSError("libnvidia-ml.so.1: cannot open shared object file")

    assert hardware.gpu_info(Broken()) == []


def test_memory_bandwidth_is_plausible() -> None:
    bw = hardware.memory_bandwidth_bytes_per_s(size_mb=32, repeats=2)
    assert 1e8 < bw < 1e13  # between 0.1 GB/s and 10 TB/s


def test_memory_bandwidth_rejects_non_positive_sizes() -> None:
    with pytest.raises(ValueError):
        hardware.memory_bandwidth_bytes_per_s(size_mb=0)
