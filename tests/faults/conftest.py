"""Fault-injection tests: every test here is marked ``faults`` and runs in the normal ``pytest`` run.

``tests/`` goes on ``sys.path`` so that ``fakes`` (fake NVML, fake sysfs)
imports when this folder is collected alone.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.faults)
