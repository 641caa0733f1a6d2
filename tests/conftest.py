"""What every test gets: reset process-wide state, the fast loop's marks, its timeouts and its process guard.

``nrg.dvfs.configure`` sets a module-level target (NVML module, sysfs root,
marker path) that every later DVFS call uses; a test that points it at a fake
GPU must not leave the next test talking to that fake, nor start from one a
module-scoped fixture left behind. Resetting here, before and after each test,
replaces the copies each DVFS test file used to carry.

The fast loop (``make test-fast``) runs the tests marked none of
:data:`NOT_FAST`. A test that starts a process (a Python child, an isolated
sweep cell, a fork, papermill, ``nrg`` on the command line) is marked
``process``: explicitly in its file, or here, by the fixture it uses
(:data:`PROCESS_FIXTURES`); a test of the built book by its fixture
(:data:`BOOK_FIXTURES`). ``--forbid-processes`` (which ``make test-fast``
passes) fails a test that starts a process without such a mark, so the loop
stays free of them; without it the run only lists them at the end. Every test
has a timeout (``timeout`` in pyproject.toml); a fast one a tighter
:data:`FAST_TIMEOUT_S`.

``make test`` runs the suite on two pytest-xdist workers (``-n 2 --dist
loadgroup``). A fixture that is expensive and shared (the book build, the fake
H200's dry run, a module's model load, Ray cluster or serving engine) must be set
up once, not once per worker: every test that uses one is put in the fixture's
``xdist_group`` (:func:`_shared_group`), so one worker runs them all. Under
xdist the tests known to take a minute or more are sent out first
(:data:`LONG_FIRST`), so the two workers finish together instead of one ending
the run alone on the slowest test.
"""
from __future__ import annotations

import json
import multiprocessing.process
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nrg import dvfs
from nrg.meters import hardware
from nrg.sweep.runfolder import schema

# Every column a test run writes must be declared in nrg.sweep.runfolder.columns (cell
# processes inherit the variable); outside tests an undeclared column is kept
# with a warning so that a long measurement is never lost.
os.environ[schema.STRICT_ENV] = "1"

# Marks that keep a test out of `make test-fast` (pyproject.toml describes each).
NOT_FAST = ("slow", "book", "faults", "ray", "process")

# Seconds a fast test may take before it fails (setup included, so a module
# fixture counts for its first test); the rest get pyproject's `timeout`. A fast
# test takes seconds at most on a quiet machine and the whole fast loop is meant
# to take 3 minutes: past that one is hung or belongs to another mark. (60 s was
# seen to fail module fixtures on a 2-core machine shared by eight test runs.)
FAST_TIMEOUT_S = 180
# The session's book build (tiny profile, every chapter) counts for the first test that uses it.
BOOK_TIMEOUT_S = 1800

# Fixtures that start a process: a test using one is marked `process`.
PROCESS_FIXTURES = frozenset({"lab",            # tests/test_lab.py: a JupyterLab server
                              "h200_dry_run"})  # below: scripts/device-reference.sh on the fake H200
# Fixtures that build the book (tests/test_book.py's `built`, once per session): `book` and `slow`.
BOOK_FIXTURES = frozenset({"built"})
# Commands a library starts on its own, once per process, whichever test imports it
# first (codecarbon looks for nvidia-smi and rocm-smi): not a test's doing.
LIBRARY_PROBES = frozenset({"nvidia-smi --help", "rocm-smi --help"})

_FAULTS_DIR = Path(__file__).resolve().parent / "faults"

# Processes started by tests not marked for it, for the end-of-run list.
_UNMARKED: list[tuple[str, list[str]]] = []
# The key under which a test's report carries them (a report reaches the xdist controller; a list would not).
_UNMARKED_KEY = "nrg_unmarked_processes"

# Session fixtures shared by tests in several files, and the xdist group their tests share.
SHARED_SESSION_FIXTURES = {"built": "book", "h200_dry_run": "h200-dry-run"}
# Groups and tests that take a minute or more (each measured on the 2-core machine): first in the
# xdist queue. Only the order changes; a name that no longer matches just loses its place.
LONG_FIRST = ("book", "h200-dry-run", "serving-engine", "tests/test_ray_cluster.py",
              "tests/faults/test_fault_kill9.py::test_kill9_at_random_moments",
              "tests/test_tickets_workload.py::test_nrg_sweep_runs_chapter_4",
              "tests/test_sweep_cli.py::test_sweep_killed_with_sigkill",
              "tests/test_sweep_cli.py::test_blocked_sweep_killed_with_sigkill",
              "tests/test_reference.py::test_a_cell_stopped_at_the_budget")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--forbid-processes", action="store_true",
                     help="fail a test that starts a process but carries none of the marks "
                          f"{', '.join(NOT_FAST)} (make test-fast passes it)")


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    """Mark before `-m` deselects by mark; under xdist, name each test's group once pytest-xdist has run."""
    _mark(config, items)
    yield
    _name_groups(config, items)


def _mark(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark by folder and fixture, then give each fast test its tighter timeout."""
    timeouts = config.pluginmanager.hasplugin("timeout")
    for item in items:
        if _FAULTS_DIR in item.path.parents:      # as tests/faults/conftest.py does, which runs later
            item.add_marker(pytest.mark.faults)
        fixtures = set(getattr(item, "fixturenames", ()))
        if PROCESS_FIXTURES & fixtures:
            item.add_marker(pytest.mark.process)
        if BOOK_FIXTURES & fixtures:
            item.add_marker(pytest.mark.book)
            item.add_marker(pytest.mark.slow)
        group = _shared_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        if not timeouts or item.get_closest_marker("timeout") is not None:
            continue
        if BOOK_FIXTURES & fixtures:
            item.add_marker(pytest.mark.timeout(BOOK_TIMEOUT_S))
        elif _is_fast(item):
            item.add_marker(pytest.mark.timeout(FAST_TIMEOUT_S))


    if os.environ.get("PYTEST_XDIST_WORKER"):   # every worker sorts alike: the collections stay equal
        items.sort(key=_queue_rank)


def _name_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Append ``@<group>`` to each grouped test's node id, which ``--dist loadgroup`` schedules by.

    pytest-xdist 3.8 appends it to ``item._nodeid``, which pytest 9 no longer reads (the
    id is ``item._id``): without this every test would be scheduled alone and each worker
    would build the book, run the dry run and load the modules' models itself.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)  # type: ignore[attr-defined]


def _is_fast(item: pytest.Item) -> bool:
    return not any(item.get_closest_marker(name) for name in NOT_FAST)


def _shared_group(item: pytest.Item) -> str | None:
    """The xdist group of a test that uses a shared fixture: a session one of :data:`SHARED_SESSION_FIXTURES`, else its module's own module-scoped fixture."""
    if item.get_closest_marker("xdist_group") is not None:      # the test file chose its group
        return None
    fixtures = getattr(item, "fixturenames", ())
    for name in fixtures:
        if name in SHARED_SESSION_FIXTURES:
            return SHARED_SESSION_FIXTURES[name]
    info = getattr(item, "_fixtureinfo", None)
    module = item.nodeid.split("::", 1)[0]
    for name in fixtures:
        defs = info.name2fixturedefs.get(name, ()) if info is not None else ()
        owner = getattr(defs[-1], "node", None) if defs else None    # where the fixture is defined
        if defs and defs[-1].scope == "module" and owner is not None and owner.nodeid == module:
            return module
    return None


def _queue_rank(item: pytest.Item) -> int:
    """0: a test of :data:`LONG_FIRST`; 1: another slow-tier test; 2: a fast one (stable sort: file order within)."""
    mark = item.get_closest_marker("xdist_group")
    names = (item.nodeid, *(mark.args[:1] if mark is not None else ()), *(mark.kwargs.values() if mark else ()))
    if any(str(name).startswith(long) for name in names for long in LONG_FIRST):
        return 0
    return 2 if _is_fast(item) else 1


def pytest_configure(config: pytest.Config) -> None:
    # The git probe of every result's provenance is cached per process: run it
    # now, or the first test to record provenance is seen starting `git`.
    hardware.git_sha()
    _WATCH.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    _WATCH.uninstall()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _WATCH.current = item.nodeid      # module fixtures set up here count for this test


@pytest.fixture(autouse=True)
def _process_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail (``--forbid-processes``) or list a fast test that started a process."""
    yield
    started = _WATCH.starts.pop(request.node.nodeid, [])
    if not started or not _is_fast(request.node):
        return
    request.node.user_properties.append((_UNMARKED_KEY, started))   # listed at the end (pytest_runtest_logreport)
    if request.config.getoption("--forbid-processes"):
        pytest.fail(f"started {len(started)} process(es) ({'; '.join(started[:3])}) but is not marked "
                    "process: add @pytest.mark.process (or its fixture to PROCESS_FIXTURES in "
                    "tests/conftest.py)", pytrace=False)


class _ProcessWatch:
    """Records each process start (subprocess, os.fork/posix_spawn/system, multiprocessing) per test."""

    def __init__(self) -> None:
        self.current = ""
        self.starts: dict[str, list[str]] = {}
        self._saved: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]

        def watched_execute_child(popen: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> Any:
            if _describe(args) not in LIBRARY_PROBES:
                self.record(_describe(args))
            return execute_child(popen, args, *rest, **kw)

        self._patch(subprocess.Popen, "_execute_child", watched_execute_child)
        for name in ("fork", "posix_spawn", "posix_spawnp", "system"):
            if hasattr(os, name):
                self._patch(os, name, self._recording(getattr(os, name), f"os.{name}"))
        start = multiprocessing.process.BaseProcess.start
        self._patch(multiprocessing.process.BaseProcess, "start",
                    self._recording(start, "multiprocessing.Process.start"))

    def uninstall(self) -> None:
        while self._saved:
            owner, name, value = self._saved.pop()
            setattr(owner, name, value)

    def record(self, what: str) -> None:
        if self.current:
            self.starts.setdefault(self.current, []).append(what)

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def _recording(self, fn: Any, label: str) -> Any:
        def call(*args: Any, **kw: Any) -> Any:
            self.record(label)
            return fn(*args, **kw)
        return call


_WATCH = _ProcessWatch()


def _describe(args: Any) -> str:
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    return " ".join(os.fsdecode(a) for a in argv)[:120]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the unmarked process starts from the teardown report (in the xdist controller too)."""
    if report.when != "teardown":
        return
    for key, started in report.user_properties:
        if key == _UNMARKED_KEY:
            _UNMARKED.append((report.nodeid, list(started)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _UNMARKED:
        terminalreporter.section("tests that started a process without the `process` mark")
        for nodeid, started in _UNMARKED:
            terminalreporter.write_line(f"{nodeid}: {'; '.join(started[:3])}")


@pytest.fixture(autouse=True)
def _default_dvfs_target() -> Iterator[None]:
    dvfs.configure()
    yield
    dvfs.configure()


_ROOT = Path(__file__).resolve().parents[1]
#: Seconds scripts/device-reference.sh may take in the dry run (its NRG_DEVICE_LIMIT_S).
DEVICE_LIMIT_S = int(os.environ.get("NRG_TEST_DEVICE_LIMIT_S", "400"))


@pytest.fixture(scope="session")
def h200_dry_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``scripts/device-reference.sh --one-per-part`` on the fake H200 under the bare image, run once.

    The fake H200 (tests/fakes/h200.py) stands behind pynvml in every process and
    records each state-changing call; the bare image's missing packages are blocked; a
    fake ``nvidia-smi`` logs each call; the device is the CPU. Two tests read this one
    run: tests/test_reference_device_script.py (the script: one archive, queries only,
    within its limit) and tests/test_reference.py (the run: ok rows from every part,
    nothing set, then a resume in the same folder). They used to make two runs of the
    same meters and cells, through the script and through ``nrg reference`` (which the
    script runs). What they check is read here, right after the run, so the resume of
    the second cannot change what the first sees.
    """
    tmp = tmp_path_factory.mktemp("h200-dry-run")
    bare = _ROOT / "tests" / "fakes" / "bare_image"
    state, calls, out, run_dir = tmp / "h200.json", tmp / "smi.log", tmp / "out", tmp / "run"
    env = {**os.environ, "PATH": f"{bare / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(bare), "PYTHON": sys.executable, "OUT": str(out),
           "NRG_TEST_FAKE_H200": str(state), "NRG_TEST_NVIDIA_SMI_LOG": str(calls),
           "NRG_REF_DEVICE": "cpu", "NRG_DEVICE_LIMIT_S": str(DEVICE_LIMIT_S), "NRG_REF_RUN": str(run_dir),
           "NRG_REF_ARGS": "--one-per-part", "NRG_CACHE_DIR": str(tmp / "cache"),
           "NRG_STATE_DIR": str(tmp / "state")}
    started = time.perf_counter()
    done = subprocess.run(["bash", str(_ROOT / "scripts" / "device-reference.sh")], capture_output=True,
                          text=True, env=env, cwd=tmp, timeout=DEVICE_LIMIT_S + 60)
    wall_s = time.perf_counter() - started
    archives = sorted(out.iterdir()) if out.is_dir() else []
    names: list[str] = []
    if len(archives) == 1:
        with tarfile.open(archives[0]) as tar:
            names = tar.getnames()
    summary = run_dir / "summary.json"
    return {"done": done, "wall_s": wall_s, "limit_s": DEVICE_LIMIT_S, "run": run_dir, "state": state, "tmp": tmp, "bare": bare,
            "archives": [a.name for a in archives], "archive_names": names,
            "smi_calls": calls.read_text().splitlines() if calls.is_file() else None,
            "gpu_calls": json.loads(state.read_text())["calls"] if state.is_file() else None,
            "summary": json.loads(summary.read_text()) if summary.is_file() else None,
            "parquet": sorted(p.name for p in run_dir.rglob("*.parquet"))}
