"""A cell's worker in a child process that keeps the cell loaded, measuring on request.

In this process (``isolate: false``: tests, benchmarks, notebooks on fake
hardware) the runner uses the workload's own worker
(:func:`nrg.workloads.registry.worker`); :class:`ProcessWorker` is the same
protocol (:class:`nrg.workloads.protocol.Worker`) across a process boundary.

Why a long-lived child per cell: a blocked run order (:mod:`nrg.sweep.schedule.blocks`)
visits each cell once per block, and reloading a model for every repeat would
cost more than the repeats (SmolLM2's GGUF conversion takes ~25 s here). The
child loads once, then answers ``repeat`` requests between which other cells
run; a crash, an out-of-memory kill or a hang still only costs that cell,
which becomes a failed row. Loading and warm-up happen in ``prepare``, never
inside a measured window.

Protocol (one JSON object per line): the parent writes ``{"cmd": ...}`` to the
child's stdin; the child answers on a private pipe (its stdout goes to the
cell's log, so library prints cannot corrupt the protocol). End of stdin means
the parent is gone: the child leaves through its normal exit path, so every
setting it changed is restored. The parent can also die while the child is
busy with a request (a model loading, a long repeat): a watcher thread sees
its parent change (as a one-shot cell does, :mod:`nrg.sweep.schedule.cell`) and ends the child the
same way, by SIGTERM, within a second rather than when the request is done.
"""
from __future__ import annotations

import json
import math
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from nrg.sweep.config import Cell
from nrg.sweep.schedule.cell import STDERR_TAIL_CHARS, _watch_parent, exit_reason, isolated_python
from nrg.sweep.schedule.context import SweepContext

if TYPE_CHECKING:
    from nrg.workloads.protocol import Worker

class WorkerError(RuntimeError):
    """A cell's worker failed; the message says how (exit status, timeout, the child's error)."""


def _jsonable(value: Any) -> object:
    """Numpy / torch scalars and paths as plain JSON values (NaN stays NaN)."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def child_command() -> list[str]:
    """The child's argv: isolated Python, then only nrg's folder and PYTHONPATH on the path.

    ``-I`` keeps the working directory and PYTHONPATH off the path, so a
    ``json.py`` there cannot shadow the standard library; nrg's folder and the
    parent's PYTHONPATH entries come back made absolute
    (:func:`nrg.sweep.schedule.cell.import_paths`).
    """
    return isolated_python("from nrg.sweep.schedule.worker import child_main; sys.exit(child_main())")


@dataclass
class ProcessWorker:
    """A child process that measures one cell; ``timeout_s`` bounds the cell's total time."""

    cell: Cell
    context: SweepContext
    log_path: Path
    timeout_s: float | None = None
    dvfs: Mapping[str, Any] | None = None
    offline: bool = True
    proc: subprocess.Popen[bytes] | None = None
    _reply: IO[bytes] | None = None
    _spent_s: float = 0.0
    footprint: dict[str, float] = field(default_factory=dict)

    def prepare(self, next_repeat: int = 0, retries: int = 0, done: int = 0) -> None:
        """Start the child and have it load, transform and warm up.

        The child gets this process' pid: it ends itself when this process dies.
        """
        read_fd, write_fd = os.pipe()
        env = {**os.environ, **({"HF_HUB_OFFLINE": "1"} if self.offline else {})}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*child_command(), str(write_fd), str(os.getpid())], stdin=subprocess.PIPE, stdout=log,
                stderr=subprocess.STDOUT, pass_fds=(write_fd,), start_new_session=True, env=env)
        os.close(write_fd)
        self._reply = os.fdopen(read_fd, "rb")
        spec = {"cell": self.cell.to_dict(), "context": self.context.to_dict(),
                "dvfs": None if self.dvfs is None else dict(self.dvfs),
                "next_repeat": next_repeat, "retries": retries, "done": done}
        self.footprint = self._call({"cmd": "prepare", "spec": spec})

    def repeat(self, block: int, run_order: int | None) -> tuple[list[dict[str, Any]], float | None]:
        """One measured repeat in the child."""
        reply = self._call({"cmd": "repeat", "block": block, "run_order": run_order})
        return reply["rows"], reply["sample"]

    def finish(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Common columns and quality rows, measured in the child."""
        reply = self._call({"cmd": "finish"})
        return reply["common"], reply["extra_rows"]

    def close(self, now: bool = False) -> None:
        """Ask the child to leave: end of input, its normal exit path (it restores what it set).

        ``now`` (an interrupted sweep, a timeout): SIGTERM, whose handler
        restores its settings, then SIGKILL after a grace period.
        """
        if self.proc is None:
            return
        from nrg.sweep.schedule import signals

        proc, self.proc = self.proc, None
        try:
            if now:
                raise subprocess.TimeoutExpired(proc.args, 0)
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=signals.TERM_GRACE_S)
        except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
            signals.stop_process(proc)   # replays the marker itself after a SIGKILL
        if self._reply is not None:
            self._reply.close()
            self._reply = None

    def _call(self, request: Mapping[str, Any]) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self._reply is not None
        started = time.monotonic()
        try:
            self.proc.stdin.write(json.dumps(request, default=_jsonable).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child is gone: reading its reply below says how
        line = self._read_line(started)
        self._spent_s += time.monotonic() - started
        if not line:
            rc = self.proc.wait()
            self.close()
            raise WorkerError(f"{exit_reason(rc, self.timeout_s)}\n{self._log_tail()}")
        reply = json.loads(line)
        if "error" in reply:
            status = reply.get("status", "failed")
            raise (NotImplementedError if status == "unsupported" else WorkerError)(reply["error"])
        return dict(reply)

    def _log_tail(self) -> str:
        """The end of the child's output: the traceback of a crash, as the one-shot cell's failure rows."""
        try:
            return self.log_path.read_text(errors="replace")[-STDERR_TAIL_CHARS:]
        except OSError:
            return ""

    def _read_line(self, started: float) -> bytes:
        assert self._reply is not None and self.proc is not None
        budget = None if self.timeout_s is None else self.timeout_s - self._spent_s
        while True:
            wait = None if budget is None else budget - (time.monotonic() - started)
            if wait is not None and wait <= 0:
                self.close(now=True)
                raise WorkerError(f"{exit_reason(None, self.timeout_s)}\n{self._log_tail()}")
            ready, _, _ = select.select([self._reply], [], [], wait)
            if ready:
                return self._reply.readline()


# ------------------------------------------------------------------ child side


def _answer(out: IO[str], reply: Mapping[str, Any]) -> None:
    out.write(json.dumps(reply, default=_jsonable) + "\n")
    out.flush()


def _footprint(device: str) -> dict[str, float]:
    """What the loaded cell occupies and what is left, for the parent's keep-loaded decision."""
    if device.startswith("cuda"):
        import torch

        free, total = torch.cuda.mem_get_info(torch.device(device))
        return {"used_bytes": float(torch.cuda.memory_allocated(torch.device(device))),
                "free_bytes": float(free), "total_bytes": float(total)}
    import psutil

    vm = psutil.virtual_memory()
    return {"used_bytes": float(psutil.Process().memory_info().rss),
            "free_bytes": float(vm.available), "total_bytes": float(vm.total)}


def _serve(worker: Worker | None, request: Mapping[str, Any]) -> tuple[Worker | None, dict[str, Any]]:
    cmd = request.get("cmd")
    if cmd == "prepare":
        from nrg.sweep.schedule.cell import configure_dvfs
        from nrg.workloads import registry

        spec = request["spec"]
        configure_dvfs(spec.get("dvfs"))
        cell = Cell.from_dict(spec["cell"])
        worker = registry.worker(cell, SweepContext.from_dict(spec["context"]))
        try:
            worker.prepare(spec.get("next_repeat", 0), spec.get("retries", 0), spec.get("done", 0))
        except BaseException:
            worker.close()
            raise
        return worker, _footprint(cell.settings.device)
    if worker is None:
        raise RuntimeError(f"{cmd!r} before 'prepare'")
    if cmd == "repeat":
        order = request.get("run_order")
        rows, sample = worker.repeat(int(request["block"]), None if order is None else int(order))
        return worker, {"rows": rows, "sample": sample if sample is None or math.isfinite(sample) else None}
    if cmd == "finish":
        common, extra = worker.finish()
        return worker, {"common": common, "extra_rows": extra}
    raise RuntimeError(f"unknown command {cmd!r}")


def child_main(argv: list[str] | None = None) -> int:
    """The child's loop: answer requests until stdin ends; settings are restored on every exit.

    SIGTERM and SIGHUP unwind the loop (closing the cell restores what it set)
    and then end the process by the same signal, so the parent reads the same
    exit as from a one-shot cell process (:func:`nrg.sweep.schedule.cell.exit_reason`).
    ``argv``: the reply pipe's fd, then the parent's pid (watched: its death is
    a SIGTERM here, even in the middle of a request).
    """
    args = sys.argv[1:] if argv is None else argv
    out = os.fdopen(int(args[0]), "w")
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGHUP, _raise_stopped)
    held: list[Worker | None] = [None]
    try:
        if len(args) > 1:
            _watch_parent(int(args[1]))
        _answer_requests(out, held)
    except _Stopped as stop:
        _close(held)
        signal.signal(stop.signum, signal.SIG_DFL)
        os.kill(os.getpid(), stop.signum)
    finally:
        _close(held)
    return 0


def _answer_requests(out: IO[str], held: list[Worker | None]) -> None:
    import traceback

    for line in sys.stdin:
        request = json.loads(line)
        try:
            held[0], reply = _serve(held[0], request)
        except Exception as exc:  # a failure of the cell is data: the parent records it
            status = "unsupported" if isinstance(exc, NotImplementedError) else "failed"
            tail = traceback.format_exc(limit=-3)
            reply = {"error": f"{type(exc).__name__}: {exc}\n{tail}", "status": status}
        _answer(out, reply)


def _close(held: list[Worker | None]) -> None:
    worker, held[0] = held[0], None
    if worker is not None:
        worker.close()


class _Stopped(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (restoring settings), then die by that signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, frame: Any) -> None:
    raise _Stopped(signum)
