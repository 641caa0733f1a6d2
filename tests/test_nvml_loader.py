"""One NVML loader: every reader of the GPU (meters, DVFS, provenance, the reference planner) comes
through ``nrg.meters.nvml.load_nvml``, so a fake given once reaches all of them."""
from __future__ import annotations

import ast
from pathlib import Path

from fakes.h200 import FakeH200
from nrg.dvfs import common
from nrg.meters import hardware
from nrg.reference import plan as reference_plan

SRC = Path(__file__).resolve().parents[1] / "src" / "nrg"
LOADER = SRC / "meters" / "nvml.py"


def _imports_pynvml(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import) and any(a.name == "pynvml" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "pynvml":
            return True
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) in {"__import__", "import_module"}
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "pynvml"):
            return True
    return False


def test_only_the_loader_imports_pynvml() -> None:
    importers = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if _imports_pynvml(p))
    assert importers == ["meters/nvml.py"]


def test_the_planner_reads_the_local_gpu_through_the_loader(tmp_path) -> None:
    fake = FakeH200(tmp_path / "h200.json")
    assert reference_plan.local_gpu(0, nvml_module=fake) == ("NVIDIA H200", 141.0)
    assert reference_plan.local_gpu(3, nvml_module=fake) is None       # no such GPU: none, not an error


def test_provenance_and_dvfs_take_the_same_fake(tmp_path) -> None:
    fake = FakeH200(tmp_path / "h200.json")
    assert [g["name"] for g in hardware.gpu_info(fake)] == ["NVIDIA H200"]
    assert common.load_nvml(fake) is fake
    assert fake.state["calls"] == []                                   # reading wrote nothing
