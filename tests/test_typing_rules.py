"""The typing rules of issue 21 (deliverable 4) hold for the tree as it is.

mypy itself runs in ``make lint``; these checks keep the configuration from
drifting back: a global ``ignore_missing_imports``, pandas without its stubs,
or functions declared to return a bare ``Any`` (at most 10, each one a value
whose shape nrg cannot know, such as a YAML document).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "nrg"
MAX_BARE_ANY = 10


def _is_any(node: ast.expr | None) -> bool:
    """``Any`` or ``Any | None`` (a bare Any, however optional)."""
    if isinstance(node, ast.Name):
        return node.id == "Any"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.replace(" ", "") in ("Any", "Any|None")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = (node.left, node.right)
        return any(_is_any(p) for p in parts) and all(
            _is_any(p) or (isinstance(p, ast.Constant) and p.value is None) for p in parts)
    return False


def bare_any_returns(root: Path) -> list[str]:
    """``path:line name`` of every function under ``root`` declared to return a bare ``Any``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_any(node.returns):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name}")
    return found


def test_the_counter_sees_bare_any_in_every_spelling(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "from typing import Any\n"
        "def a() -> Any: ...\n"
        "def b() -> Any | None: ...\n"
        "def c(\n    x: int,\n) -> 'Any': ...\n"
        "def d() -> dict[str, Any]: ...\n"
        "def e() -> int | None: ...\n"
        "class K:\n    async def f(self) -> Any: ...\n")
    assert [line.split()[1] for line in bare_any_returns(tmp_path)] == ["a", "b", "c", "f"]


def test_few_functions_return_a_bare_any() -> None:
    found = bare_any_returns(SRC)
    assert len(found) <= MAX_BARE_ANY, "\n".join(found)


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")   # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_mypy_ignores_missing_imports_only_per_module() -> None:
    mypy = _pyproject()["tool"]["mypy"]
    assert "ignore_missing_imports" not in mypy
    assert mypy["warn_return_any"] is True
    for override in mypy.get("overrides", []):
        modules = override["module"] if isinstance(override["module"], list) else [override["module"]]
        assert not any(m.startswith("pandas") for m in modules), "pandas is checked through pandas-stubs"
        assert "*" not in modules


def test_pandas_stubs_are_in_the_dev_extra_and_pinned_to_the_pandas_release() -> None:
    dev = _pyproject()["project"]["optional-dependencies"]["dev"]
    assert any(re.match(r"pandas-stubs\b", d) for d in dev)
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    pandas_minor = pins["pandas"].split(".")[:2]
    assert pins["pandas-stubs"].split(".")[:2] == pandas_minor
