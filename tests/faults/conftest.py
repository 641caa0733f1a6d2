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


@pytest.fixture(autouse=True, scope="session")
def _signals_not_ignored():
    """Cells must not inherit an ignored SIGHUP or SIGINT from how the suite was started.

    ``nohup`` ignores SIGHUP and a background job of a non-interactive shell
    ignores SIGINT; children inherit that, and nrg rightly honours an ignored
    signal (``nohup`` means "keep running"). The fault tests send these signals
    to cells and expect them to act, so the suite restores the defaults first.
    """
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGINT)}
    if saved[signal.SIGHUP] == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if saved[signal.SIGINT] == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
