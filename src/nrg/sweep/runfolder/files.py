"""The files of a run folder, at the lowest level: names, atomic writes, the lock, reading one cell.

Kept apart from :mod:`nrg.sweep.runfolder.store` so that :mod:`nrg.sweep.runfolder.manifest` and
:mod:`nrg.sweep.runfolder.locks` build on it without importing the store (no cycles).
"""
from __future__ import annotations

import errno
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

MANIFEST = "manifest.json"
LOCK = ".lock"
CELLS = "cells"
CORRUPT = "corrupt"
CLAIMS = "claims"
LOGS = "logs"
SUFFIX = ".parquet"
TMP_MARK = ".tmp-"
_CELL_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
REQUIRED = ("cell_id", "status")
STALE_TMP_AGE_S = 3600.0     # a temporary file whose writer cannot be checked (another host) is stale after this


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    The temporary name carries this host and pid (:func:`remove_stale_temporary`
    removes only files of dead writers), and the file gets the mode a plain
    ``open`` would give it (``0666`` less the umask): ``mkstemp``'s ``0600``
    made a second user's sweep judge every cell file of the folder damaged.
    """
    fd, tmp = tempfile.mkstemp(prefix=f"{path.name}{TMP_MARK}{_writer_tag()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """This process's umask, read without changing it (``/proc``), else by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _writer_tag() -> str:
    """``<host>-<pid>``: who writes a temporary file, so only a dead writer's files are removed."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64]
    return f"{host}-{os.getpid()}"


def _writer_alive(name: str, host: str) -> bool | None:
    """Whether the writer named in temporary file ``name`` runs; None when the name does not say."""
    match = re.search(re.escape(TMP_MARK) + r"(.+)-(\d+)-[^-]*$", name)
    if match is None or match.group(1) != host:
        return None
    pid = int(match.group(2))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's live process
        return True
    return True


def remove_stale_temporary(run_dir: Path, folders: Iterable[Path],
                           unknown_age_s: float = STALE_TMP_AGE_S) -> int:
    """Remove temporary files of writers that died; returns how many.

    Under the run's lock, and only files whose writer (host and pid in the
    name) is not running on this host, or -- written elsewhere or by an older
    nrg -- untouched for ``unknown_age_s``: removing every ``*.tmp-*`` at
    start-up deleted a live sweep's manifest being written, which then failed.
    """
    host = _writer_tag().rsplit("-", 1)[0]
    removed = 0
    with locked(run_dir):
        for folder in folders:
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if TMP_MARK not in path.name or not path.is_file():
                    continue
                alive = _writer_alive(path.name, host)
                try:
                    old = time.time() - path.stat().st_mtime > unknown_age_s
                except FileNotFoundError:  # renamed by its writer meanwhile
                    continue
                if alive is False or (alive is None and old):
                    path.unlink(missing_ok=True)
                    removed += 1
    return removed


class UnreadableCellError(PermissionError):
    """A cell file this user may not read: not damaged (never moved aside), but not usable here."""


def check_cell_id(cell_id: str) -> None:
    """Refuse a cell id that is not a plain file name (ids become file names)."""
    if not _CELL_ID.match(cell_id) or TMP_MARK in cell_id:
        raise ValueError(f"cell_id={cell_id!r} is not a safe file name")


class DamagedCellError(Exception):
    """A cell file that cannot be used; the message says why."""


def read_cell(path: Path, columns: Iterable[str] | None = None) -> pa.Table:
    """The rows of one cell file, or :class:`DamagedCellError` saying why the file is not usable."""
    import pyarrow.parquet as pq

    cell_id = path.name[: -len(SUFFIX)]
    if path.exists() and not os.access(path, os.R_OK):
        raise UnreadableCellError(errno.EACCES, "cell file not readable by this user (it is not damaged and "
                                  "was left as it is; ask its owner to make it readable, e.g. chmod a+r, "
                                  "or use another output folder)", str(path))
    try:
        names = pq.read_schema(path).names
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise DamagedCellError(f"not a cell file of nrg: no {', '.join(missing)} column")
        wanted = None if columns is None else sorted({*columns, *REQUIRED} & set(names))
        table = pq.read_table(path, columns=wanted)
    except (DamagedCellError, FileNotFoundError):
        raise
    except PermissionError as exc:
        raise UnreadableCellError(errno.EACCES, f"cell file not readable by this user ({exc}); it is not "
                                  "damaged and was left as it is", str(path)) from exc
    except Exception as exc:  # Arrow/OS errors of every kind mean "cannot read"
        raise DamagedCellError(f"cannot be read: {type(exc).__name__}: {exc}") from exc
    if table.num_rows == 0:
        raise DamagedCellError("has no rows (every cell writes at least one, failed or not)")
    ids = set(table.column("cell_id").to_pylist())
    if ids != {cell_id}:
        raise DamagedCellError(f"holds rows of cell(s) {sorted(map(str, ids))}, not {cell_id}")
    return table


def cell_status(table: pa.Table) -> str:
    """``failed`` when a row of the cell failed (what ``--retry-failed`` reruns), else ``ok``.

    An ``unsupported`` row is a final answer about this machine and its
    software (e.g. LoRA cannot wrap torch's dynamic int8 layers), not a
    failure: rerunning it would give the same row.
    """
    return "failed" if "failed" in set(table.column("status").to_pylist()) else "ok"


def cell_files(cells_dir: Path) -> list[Path]:
    """Complete cell files (temporary files and ``corrupt/`` excluded), sorted by name."""
    if not cells_dir.is_dir():
        return []
    return sorted(p for p in cells_dir.glob(f"*{SUFFIX}") if TMP_MARK not in p.name and p.is_file())


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock (``flock`` on ``.lock``): one process at a time changes shared state."""
    import fcntl

    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


_MANIFEST_KEYS = ("run_id", "sessions", "configs", "version")


def check_run_dir(parameter: str, value: str | Path) -> Path:
    """An output folder for a sweep: absent, empty, or an nrg run folder -- never someone else's folder.

    nrg run folder: a ``manifest.json`` of nrg (a JSON object with nrg's
    keys), or, when that file is missing or damaged, the ``cells/`` folder or
    ``.lock`` a sweep leaves. Refused before anything is written: a folder
    holding other files only (nrg would mix its files into it) and one whose
    ``manifest.json`` is another program's (nrg used to rename it silently).
    """
    from nrg.errors import ParameterError, check_writable_dir

    path = check_writable_dir(parameter, value)
    if not path.is_dir() or not any(path.iterdir()):
        return path
    manifest = path / MANIFEST
    if manifest.is_file():
        foreign = _foreign_manifest(manifest)
        if foreign:
            raise ParameterError(f"{parameter}={str(value)!r} is not valid; its manifest.json is not an nrg run "
                                 f"manifest ({foreign}): give an empty or new folder, or an nrg run folder")
        return path
    if (path / CELLS).is_dir() or (path / LOCK).is_file():
        return path   # an nrg run whose manifest was lost: the sweep rebuilds it from the cells
    raise ParameterError(f"{parameter}={str(value)!r} is not valid; the folder is not empty and is not an nrg "
                         "run folder (no manifest.json, no cells/): give an empty or new folder")


def _foreign_manifest(path: Path) -> str | None:
    """Why ``path`` is another program's manifest; None when it is nrg's (damaged ones included)."""
    import json

    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read(1_000_000) or b"null")
    except (OSError, ValueError):
        return None   # unreadable or cut short: nrg's own, damaged; a sweep keeps it aside and rebuilds it
    if data is None:
        return None   # empty: a write cut short
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    if not any(key in data for key in _MANIFEST_KEYS):
        keys = ", ".join(sorted(map(str, data))[:5]) or "no keys"
        return f"keys {keys}; nrg's has run_id, sessions, configs"
    return None
