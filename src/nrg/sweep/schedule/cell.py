"""One cell, failure-proof: its rows or one failed row; the cell process entry point.

A cell never raises for a failure of the machine or the model: the error
becomes the cell's ``status``/``error`` row so a sweep goes on. Run as a
process (:func:`command`) it measures the cell described by a JSON spec (see
:func:`cell_spec`) and writes its Parquet file atomically -- the
same program whether the cell runs in a child process here or on another
machine.

Why not ``python -m nrg.sweep.schedule.cell``: ``-m`` puts the working directory first
on ``sys.path``, so a ``json.py`` or ``resource.py`` lying there would replace
the standard library in every cell. :func:`command` starts Python isolated
(``-I``: no working directory, no user site, ``PYTHON*`` variables ignored)
and puts back only the folder holding ``nrg`` and the ``PYTHONPATH`` entries,
made absolute.

The spec also carries the parent's :func:`nrg.dvfs.configure` settings (GPU
index, NVML module, sysfs root, marker file), so a clock set inside the cell
acts on the device the sweep was told to use, and the marker the sweep
recovers from is the one the cell wrote.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.sweep.config import Cell
from nrg.sweep.schedule import signals
from nrg.sweep.schedule.context import SweepContext, failed_frame

STDERR_TAIL_CHARS = 2000

if TYPE_CHECKING:
    import pandas as pd

    from nrg.sweep.runfolder.store import RunStore

#: Seconds a cell whose sweep died gets to unwind after SIGTERM before it restores from
#: the watcher thread and exits (a main thread inside one long C call cannot run handlers).
PARENT_GRACE_S = 10.0

# ``-I`` skips PYTHONPATH, so a ``sitecustomize`` there (site-wide setup such as the
# tests' "bare GPU image" without optional packages) is run here, as Python would.
_PRELUDE = ("import sys, json, importlib.util; sys.path[:0] = json.loads(sys.argv.pop(1)); "
            "importlib.util.find_spec('sitecustomize') and __import__('sitecustomize'); ")


def _status_of(exc: BaseException) -> str:
    return "unsupported" if isinstance(exc, NotImplementedError) else "failed"


def run_cell(cell: Cell, context: SweepContext,
             monitor_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """All rows of ``cell``; a failure gives one row with ``status``/``error`` instead."""
    try:
        from nrg.sweep.schedule.blocks import run_whole
        from nrg.workloads import registry

        return run_whole(cell, registry.worker(cell, context, monitor_options))
    except Exception as exc:  # any failure of the cell is data
        tail = traceback.format_exc(limit=-3)
        return failed_frame(cell, context, f"{type(exc).__name__}: {exc}\n{tail}", _status_of(exc))


# ------------------------------------------------------------------ process entry


def import_paths() -> list[str]:
    """What a cell process puts on ``sys.path``: the folder holding ``nrg``, then ``PYTHONPATH``.

    Empty ``PYTHONPATH`` entries (which mean the working directory) are dropped.
    """
    import nrg

    package_parent = str(Path(nrg.__file__).resolve().parent.parent)
    extra = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return list(dict.fromkeys([package_parent, *extra]))


def command(spec_path: str | Path, parent_pid: int | None = None) -> list[str]:
    """The argv of a cell process: isolated Python, only :func:`import_paths` importable."""
    cmd = [*isolated_python("from nrg.sweep.schedule.cell import main; sys.exit(main(sys.argv[1:]))"), str(spec_path)]
    return cmd + (["--parent-pid", str(parent_pid)] if parent_pid else [])


def isolated_python(entry: str) -> list[str]:
    """Argv running ``entry`` in isolated Python with only :func:`import_paths` importable.

    The one-shot cell process and a cell's worker (:mod:`nrg.sweep.schedule.worker`) both start this way.
    """
    return [sys.executable, "-I", "-c", _PRELUDE + entry, json.dumps(import_paths())]


def dvfs_spec() -> dict[str, Any]:
    """The parent's DVFS configuration as JSON, for :func:`configure_dvfs` in the cell.

    The NVML module travels as an import: a module by name, or an object
    with a ``cell_spec()`` method returning ``("module:Class", kwargs)`` (how
    the file-backed fake GPU of the tests crosses; None when it cannot).
    Anything else cannot cross: ``nvml`` is then None and ``nvml_portable`` False.
    """
    import types

    from nrg.dvfs.common import settings

    s = settings()
    module = s.nvml_module
    nvml: dict[str, Any] | None = None
    if isinstance(module, types.ModuleType):
        nvml = {"module": module.__name__}
    elif callable(cell_spec_of := getattr(module, "cell_spec", None)):   # a fake's optional method
        portable = cell_spec_of()
        if portable is not None:
            nvml = {"factory": str(portable[0]), "kwargs": dict(portable[1])}
    return {"gpu_index": s.gpu_index, "sysfs_root": str(s.sysfs_root),
            "marker_path": None if s.marker_path is None else str(s.marker_path),
            "sample_interval_s": s.sample_interval_s, "nvml": nvml,
            "nvml_portable": module is None or nvml is not None}


def configure_dvfs(spec: Mapping[str, Any] | None) -> None:
    """Apply a :func:`dvfs_spec` in this (cell) process."""
    if not spec:
        return
    import importlib

    from nrg import dvfs

    nvml = spec.get("nvml")
    module: Any = None
    if nvml and "module" in nvml:
        module = importlib.import_module(nvml["module"])
    elif nvml:
        module_name, _, qualname = str(nvml["factory"]).partition(":")
        factory: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            factory = getattr(factory, part)
        module = factory(**nvml.get("kwargs", {}))
    dvfs.configure(gpu_index=spec["gpu_index"], nvml_module=module, sysfs_root=spec["sysfs_root"],
                   marker_path=spec.get("marker_path"), sample_interval_s=spec["sample_interval_s"])


def main(argv: list[str] | None = None) -> int:
    """Measure the cell of a JSON spec and write its file (see :func:`command`)."""
    import argparse

    from nrg.sweep.runfolder.store import RunStore

    parser = argparse.ArgumentParser(prog="nrg-cell", description=main.__doc__)
    parser.add_argument("spec", help="JSON file with cell, context and run_dir")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="exit when this process dies (no orphans after kill -9 of a sweep)")
    ns = parser.parse_args(argv)
    if ns.parent_pid:
        _watch_parent(ns.parent_pid)
    spec = json.loads(Path(ns.spec).read_text())
    configure_dvfs(spec.get("dvfs"))
    cell = Cell.from_dict(spec["cell"])
    context = SweepContext.from_dict(spec["context"])
    if spec.get("node_context"):  # a Ray task: provenance, idle power, bandwidth of this node
        from nrg.sweep.schedule.node import node_context

        context = node_context(cell, context)
    frame = run_cell(cell, context)
    RunStore.at(spec["run_dir"]).write_cell(cell.cell_id, frame)
    return 0


def _watch_parent(parent_pid: int, grace_s: float | None = None) -> None:
    """End this process soon after its sweep dies, restoring any GPU/CPU setting first.

    SIGTERM to itself lets the main thread unwind (the DVFS guard restores,
    then the process dies by SIGTERM); if it is still alive after the grace
    period, this thread restores and exits.
    """
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(PARENT_GRACE_S if grace_s is None else grace_s)
        from nrg.dvfs import guard

        guard.restore_all()
        os._exit(3)

    threading.Thread(target=watch, name="nrg-parent-watch", daemon=True).start()


def cell_spec(cell: Cell, context: SweepContext, run_dir: str | Path,
              dvfs: Mapping[str, Any] | None = None, node_context: bool = False) -> dict[str, Any]:
    """The JSON a cell process receives: everything needed to measure and store one cell.

    ``node_context`` (a Ray task): the cell measures provenance, idle power and
    bandwidth on the node it runs on instead of taking the driver's.
    """
    return {"cell": cell.to_dict(), "context": context.to_dict(), "run_dir": str(Path(run_dir).resolve()),
            "dvfs": None if dvfs is None else dict(dvfs), "node_context": node_context}


def exit_reason(rc: int | None, timeout_s: float | None) -> str:
    """Words for how a cell process ended without writing its rows."""
    if rc is None:
        return (f"cell process stopped after cell_timeout_s={timeout_s} (SIGTERM, then SIGKILL "
                f"after {signals.TERM_GRACE_S:g} s)")
    if rc < 0:
        name = signal.Signals(-rc).name
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -rc == signal.SIGKILL else ""
        return f"cell process died from {name}{hint}"
    return f"cell process exited with status {rc} without writing its results"


def run_isolated(cell: Cell, context: SweepContext, run: RunStore, timeout_s: float | None,
                 dvfs: Mapping[str, Any] | None = None, offline: bool = True,
                 node_context: bool = False, env: Mapping[str, str] | None = None) -> None:
    """Measure ``cell`` in a child process; record a crash, kill or timeout as a failed cell.

    ``offline``: the cell may not reach the Hugging Face hub (``HF_HUB_OFFLINE=1``);
    the check already made sure its weights are on this machine.
    ``node_context`` and ``env`` (default: this process' environment) are how a
    Ray task runs its cell (:func:`nrg.sweep.schedule.executors.cell_task`): measuring
    its own node, seeing only the GPUs Ray gave it.
    """
    spec_path = run.logs_dir / f"{cell.cell_id}.json"
    spec_path.write_text(json.dumps(cell_spec(cell, context, run.run_dir, dvfs, node_context), default=str))
    log_path = run.logs_dir / f"{cell.cell_id}.log"
    cell_path = run.cell_path(cell.cell_id)
    before_ns = cell_path.stat().st_mtime_ns if cell_path.exists() else None
    child_env = {**(os.environ if env is None else env), **({"HF_HUB_OFFLINE": "1"} if offline else {})}
    timed_out = False
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command(spec_path, os.getpid()), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=child_env)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            rc, _ = signals.stop_process(proc)
            timed_out = True
        except BaseException:  # Ctrl-C, SIGTERM, SIGHUP of the sweep: stop the cell gently
            signals.stop_process(proc)
            raise
    if rc != 0:
        signals.recover_settings()  # a crash or the OOM killer leaves no chance to restore
    if cell_path.exists() and cell_path.stat().st_mtime_ns != before_ns:
        spec_path.unlink(missing_ok=True)  # the child wrote its rows (ok or failed)
        return
    tail = log_path.read_text(errors="replace")[-STDERR_TAIL_CHARS:]
    reason = exit_reason(None if timed_out else rc, timeout_s)
    run.write_cell(cell.cell_id, failed_frame(cell, context, f"{reason}\n{tail}"))


if __name__ == "__main__":
    sys.exit(main())
