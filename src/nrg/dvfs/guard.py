"""Apply a setting so that it is undone on every way out of the ``with`` block.

Normal exit, exceptions and KeyboardInterrupt (SIGINT) go through ``finally``.
SIGTERM (what papermill, schedulers, ``kill`` and a sweep stopping a cell send)
and SIGHUP (a closed terminal or SSH session) would otherwise end Python
without running it, so while any setting is active a handler for both
restores everything, then hands the signal on: to the previous Python handler
if there was one, else by re-delivering it with the default action so the
process dies "killed by SIGTERM" as its parent expects. A thread that must end
the process itself (a cell whose sweep died) calls :func:`restore_all` first.
SIGKILL cannot be caught; the marker written before the change covers it
(:mod:`nrg.dvfs.recovery`).
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nrg.dvfs import marker

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP)
_LOCK = threading.RLock()
_ACTIVE: list[_Active] = []
_PREVIOUS: dict[int, Any] = {}
_INSTALLED = False


class _Active:
    """One applied setting: how to undo it and which marker entry records it."""

    def __init__(self, entry: dict[str, Any], restore: Callable[[], None], marker_path: Path) -> None:
        self.entry = entry
        self.restore = restore
        self.marker_path = marker_path
        self.done = False

    def undo(self, quiet: bool = False, from_signal: bool = False) -> None:
        """Restore once; the marker entry goes only when the restore succeeded.

        ``quiet``: warn instead of raising (another exception is already on its way).
        """
        with _LOCK:  # the main thread and a watcher thread may both try
            if self.done:
                return
            self.done = True
        try:
            self.restore()
        except Exception as exc:
            if quiet or from_signal:
                warnings.warn(f"nrg.dvfs: restoring {self.entry['kind']} failed: {exc}; "
                              f"marker kept at {self.marker_path} for `nrg dvfs --recover`",
                              stacklevel=1)
                return
            raise
        marker.remove_entries(self.marker_path, {self.entry["id"]}, blocking=not from_signal)


def active_entry_ids() -> set[str]:
    """Marker entries this process is holding right now (recovery must leave them alone)."""
    with _LOCK:
        return {a.entry["id"] for a in _ACTIVE if not a.done}


def restore_all(from_signal: bool = True) -> None:
    """Undo every active setting of this process, newest first, never raising.

    For code that ends the process without unwinding the main thread (``os._exit``).
    """
    with _LOCK:
        actives = list(_ACTIVE)
    for active in reversed(actives):
        active.undo(quiet=True, from_signal=from_signal)


def _on_signal(signum: int, frame: Any) -> None:
    previous = _PREVIOUS.get(signum)
    if previous == signal.SIG_IGN:
        return
    restore_all()
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install() -> None:
    global _INSTALLED
    if _INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        _PREVIOUS[signum] = signal.getsignal(signum)
        signal.signal(signum, _on_signal)
    _INSTALLED = True


def _uninstall() -> None:
    global _INSTALLED
    if not _INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        previous = _PREVIOUS.pop(signum, None)
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    _INSTALLED = False


@contextlib.contextmanager
def guarded(entry: dict[str, Any], apply: Callable[[], None], restore: Callable[[], None],
            marker_path: Path) -> Iterator[None]:
    """Record ``entry``, run ``apply``, and run ``restore`` on any exit.

    ``apply`` must leave the device unchanged when it raises (undo its own
    partial work); then the entry is dropped and nothing is restored.
    """
    marker.add_entry(marker_path, entry)
    active = _Active(entry, restore, marker_path)
    with _LOCK:
        _ACTIVE.append(active)
        _install()
    try:
        try:
            apply()
        except Exception:  # apply undid its own partial work: nothing to restore
            active.done = True
            marker.remove_entries(marker_path, {entry["id"]})
            raise
        except BaseException:  # interrupted half-way: restore to be sure
            active.undo(quiet=True)
            raise
        try:
            yield
        except BaseException:
            active.undo(quiet=True)
            raise
        active.undo()
    finally:
        with _LOCK:
            _ACTIVE.remove(active)
            if not _ACTIVE:
                _uninstall()
