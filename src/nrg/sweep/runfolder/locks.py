"""A claim per cell, so two sweeps on one folder never measure the same cell twice.

Before measuring a cell a sweep creates ``claims/<cell_id>`` (``O_CREAT |
O_EXCL``, under the run's lock) holding its pid, host, boot id, the pid's start
time and a random token; it removes the file when the cell is done. Another
sweep that finds a live claim skips the cell and says so.

A claim is *stale* -- taken over -- when its process is gone: same host and
(a different boot, or no such pid, or a zombie, or a pid reused by a process
that started at another time). Why all of these: after ``kill -9`` the pid may
be dead, a zombie until reaped, or already given to an unrelated process.
A claim from another host is never judged stale (its processes cannot be
seen); remove ``claims/<cell_id>`` by hand if that host is gone for good.
"""
from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from nrg.sweep.runfolder.files import CLAIMS, locked


def _read_text(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def boot_id() -> str | None:
    """This boot of the machine (Linux); a claim from an earlier boot is stale."""
    text = _read_text("/proc/sys/kernel/random/boot_id")
    return text.strip() if text else None


def process_start(pid: int) -> tuple[str | None, str | None]:
    """``(state, start time in clock ticks since boot)`` of ``pid`` from /proc; Nones when unknown."""
    text = _read_text(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None, None
    fields = text.rsplit(")", 1)[1].split()
    return (fields[0], fields[19]) if len(fields) > 19 else (None, None)


def me() -> dict[str, Any]:
    """The record a claim of this process holds."""
    return {"pid": os.getpid(), "hostname": socket.gethostname(), "boot_id": boot_id(),
            "proc_start": process_start(os.getpid())[1],
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "token": uuid.uuid4().hex}


def is_stale(holder: dict[str, Any]) -> bool:
    """Whether the process that holds a claim is gone (only decidable on its own host)."""
    if holder.get("hostname") != socket.gethostname():
        return False
    if holder.get("boot_id") and boot_id() and holder["boot_id"] != boot_id():
        return True
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    state, start = process_start(pid)
    if state == "Z":
        return True
    return bool(holder.get("proc_start") and start and holder["proc_start"] != start)


def _read_holder(path: Path) -> dict[str, Any] | None:
    """A claim file's record; an unreadable one (writer killed mid-write) counts as stale."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class CellLock:
    """The outcome of claiming a cell: ``ours`` (release on exit), else who ``holder`` is."""

    run_dir: Path
    cell_id: str
    ours: bool
    holder: dict[str, Any] = field(default_factory=dict)
    took_over: dict[str, Any] | None = None

    @property
    def path(self) -> Path:
        """The claim file."""
        return self.run_dir / CLAIMS / self.cell_id

    def describe(self) -> str:
        """Who holds the cell, for a message."""
        h = self.holder
        return f"pid {h.get('pid')} on {h.get('hostname')} since {h.get('started_at')}"

    def release(self) -> None:
        """Remove the claim file if it is still this process' claim."""
        if not self.ours:
            return
        with locked(self.run_dir):
            current = _read_holder(self.path)
            if current is not None and current.get("token") == self.holder.get("token"):
                self.path.unlink(missing_ok=True)
        self.ours = False

    def __enter__(self) -> CellLock:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def claim(run_dir: Path, cell_id: str) -> CellLock:
    """Claim ``cell_id`` (a checked, safe id) for this process, taking over a stale claim."""
    path = run_dir / CLAIMS / cell_id
    with locked(run_dir):
        path.parent.mkdir(parents=True, exist_ok=True)
        holder = _read_holder(path)
        took_over = None
        if holder is not None:
            if holder and not is_stale(holder):
                return CellLock(run_dir, cell_id, False, holder)
            took_over = holder
            path.unlink(missing_ok=True)
        record = me()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        return CellLock(run_dir, cell_id, True, record, took_over)
