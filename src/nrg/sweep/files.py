"""The files of a run folder, at the lowest level: names, atomic writes, the lock, reading one cell.

Kept apart from :mod:`nrg.sweep.store` so that :mod:`nrg.sweep.manifest` and
:mod:`nrg.sweep.claims` build on it without importing the store (no cycles).
"""
from __future__ import annotations

import os
import re
import tempfile
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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + TMP_MARK, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    try:
        names = pq.read_schema(path).names
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise DamagedCellError(f"not a cell file of nrg: no {', '.join(missing)} column")
        wanted = None if columns is None else sorted({*columns, *REQUIRED} & set(names))
        table = pq.read_table(path, columns=wanted)
    except DamagedCellError:
        raise
    except Exception as exc:  # noqa: BLE001 - Arrow/OS errors of every kind mean "cannot read"
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
