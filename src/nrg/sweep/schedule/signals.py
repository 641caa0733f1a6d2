"""How a sweep ends when it is told to stop: Ctrl-C, SIGTERM, SIGHUP, a cell's timeout.

Why a module of its own: Python turns only SIGINT into an exception; SIGTERM
(``kill``, schedulers, papermill) and SIGHUP (a closed terminal or SSH
session) would end the sweep on the spot, leaving its cell process running and
any GPU clock it set locked. While a sweep runs, all three raise
:class:`SweepInterrupted` in the main thread, so the code that started a cell
stops it the gentle way (:func:`stop_process`: SIGTERM, a grace period for the
cell to restore its settings, then SIGKILL, then marker recovery) before the
sweep ends.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Seconds a cell gets, after SIGTERM, to restore what it changed before SIGKILL.
TERM_GRACE_S = 10.0

_deferring = 0
_pending: list[int] = []


class SweepInterrupted(KeyboardInterrupt):
    """The sweep was stopped by a signal; finished cells stay and a rerun resumes.

    A ``KeyboardInterrupt`` so that code catching ``Exception`` (a failing
    cell becomes a row) never swallows it.
    """

    def __init__(self, signum: int = signal.SIGINT, cells_done: int | None = None,
                 cells_total: int | None = None, repeats_kept: int = 0) -> None:
        self.signum = int(signum)
        self.cells_done = cells_done
        self.cells_total = cells_total
        self.repeats_kept = repeats_kept
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """``interrupted; N cells done, rerun to resume`` -- what the CLI prints.

        Repeats kept of unfinished cells are named too: a blocked sweep finishes
        its cells only in the last block, yet a rerun keeps those repeats.
        """
        done = "" if self.cells_done is None else f"; {self.cells_done} cells done"
        if self.repeats_kept:
            done += f" and {self.repeats_kept} repeats of unfinished cells kept"
        how = "" if self.signum == signal.SIGINT else f" ({signal.Signals(self.signum).name})"
        return f"interrupted{done}, rerun to resume{how}"


def _raise(signum: int, frame: Any) -> None:
    if _deferring:
        _pending.append(signum)
        return
    raise SweepInterrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise :class:`SweepInterrupted` inside the block (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        if previous[s] != signal.SIG_IGN:  # nohup'ed sweeps keep ignoring SIGHUP
            signal.signal(s, _raise)
    try:
        yield
    finally:
        for s, handler in previous.items():
            if signal.getsignal(s) is _raise:
                signal.signal(s, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Signals that arrive inside the block wait until it ends (cleanup must not be cut short)."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    if not _deferring and _pending:
        signum = _pending[-1]
        _pending.clear()
        raise SweepInterrupted(signum)


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def stop_process(proc: subprocess.Popen[Any], grace_s: float | None = None) -> tuple[int, bool]:
    """Stop a cell process (its own process group): SIGTERM, wait, SIGKILL, then recover.

    Returns the exit status and whether SIGKILL was needed. After a SIGKILL
    the marker is replayed here, in the parent: the cell had no chance to
    restore, and the next cell must not be measured at its clock.
    """
    grace = TERM_GRACE_S if grace_s is None else grace_s
    killed = False
    with deferred():
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            rc = proc.wait()
            killed = True
        recover_settings()
    return rc, killed


def recover_settings() -> None:
    """Replay the DVFS marker left by a cell that could not restore (no-op without a marker)."""
    from nrg.dvfs.recovery import recover_leftovers

    recover_leftovers()
