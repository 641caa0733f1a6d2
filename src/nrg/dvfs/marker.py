"""The marker file: what nrg changed and what it was before, written *before* the change.

Why: a ``kill -9`` (or a power cut of the notebook kernel) runs no ``finally``;
the GPU would stay locked at a low clock for the next user. Every setting is
recorded here first, removed once restored, and :func:`nrg.dvfs.recover`
replays what is left at the next start.

The file is JSON ``{"version": 1, "entries": [...]}``; each entry has ``id,
kind, target, original, applied, pid, host, created_at``. Entries are kept in
the order applied, so recovery undoes them last-first.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VERSION = 1


def new_entry(kind: str, target: dict[str, Any], original: Any, applied: Any) -> dict[str, Any]:
    """A marker entry for one setting about to be applied by this process."""
    return {
        "id": uuid.uuid4().hex,
        "kind": kind,
        "target": target,
        "original": original,
        "applied": applied,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


@contextlib.contextmanager
def _locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold an advisory lock beside the marker; yields False when ``blocking`` is off and it is busy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_entries(path: Path) -> list[dict[str, Any]]:
    """The entries in the marker, oldest first; [] when there is no marker."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    if not text.strip():
        return []
    data = json.loads(text)
    return list(data.get("entries", []))


def _write_entries(path: Path, entries: list[dict[str, Any]]) -> None:
    """Replace the marker atomically (a half-written marker would lose the originals)."""
    if not entries:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": VERSION, "entries": entries}, indent=2))
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def add_entry(path: Path, entry: dict[str, Any]) -> None:
    """Append ``entry`` to the marker (created if needed) and flush it to disk."""
    with _locked(path):
        _write_entries(path, [*read_entries(path), entry])


def remove_entries(path: Path, entry_ids: set[str], blocking: bool = True) -> bool:
    """Drop entries by id (the marker is deleted when empty); False if the lock was busy."""
    with _locked(path, blocking=blocking) as acquired:
        if not acquired:
            return False
        remaining = [e for e in read_entries(path) if e.get("id") not in entry_ids]
        _write_entries(path, remaining)
        return True


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (its entries may still be in use)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
