"""Results on disk: one tidy Parquet file per cell plus a run manifest.

Why one file per cell: a sweep can be killed at any moment (``kill -9``, a
machine that goes away) and must resume with no lost and no duplicate rows.
A cell's rows are written to a temporary name in the same folder and renamed
onto ``<cell_id>.parquet`` -- a rename is atomic on POSIX, so a cell file is
either complete or absent, and a rerun skips exactly the cells whose file
exists. Temporary files of a killed writer are ignored by :func:`load` and
removed by the next run. Every file has the same columns and types
(:mod:`nrg.sweep.runfolder.schema`), so DuckDB or any Parquet reader reads a run as one table.

Damage from outside (a disk that filled, a copy cut short, a stray file) must
cost one cell, never the run: a cell file that cannot be read, is not ours
(no ``cell_id``/``status``, rows of another cell) or has no row is *damaged*.
:func:`load` skips it with a warning naming it; a sweep moves it to
``cells/corrupt/`` (with a ``.why`` note) and measures the cell again.

Two sweeps may share a folder: the manifest is read-modify-written under a
lock (:mod:`nrg.sweep.runfolder.manifest`) and each cell is claimed before it is
measured (:mod:`nrg.sweep.runfolder.locks`), so no cell is measured twice.

Layout of a run directory::

    manifest.json          run_id, name, chapter, configs (first seen), one entry per session
    .lock                  flock'ed around manifest updates, claims and moving damaged files
    cells/<cell_id>.parquet
    cells/corrupt/         damaged cell files moved aside, each with a .why note
    claims/<cell_id>       the sweep measuring the cell now (pid, host, start time)
    repeats/<cell_id>.json the repeats of an unfinished cell, kept after each one
                           (:mod:`nrg.sweep.runfolder.checkpoints`; never read by :func:`load`)
    logs/<cell_id>.log     stderr of isolated cells (kept for diagnosis)
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.sweep.runfolder import checkpoints, locks, manifest
from nrg.sweep.runfolder.files import (
    CELLS,
    CLAIMS,
    CORRUPT,
    LOGS,
    MANIFEST,
    REQUIRED,
    SUFFIX,
    TMP_MARK,
    DamagedCellError,
    atomic_write_bytes,
    cell_files,
    cell_status,
    check_cell_id,
    locked,
    read_cell,
    remove_stale_temporary,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "MANIFEST",
    "SUFFIX",
    "TMP_MARK",
    "Damaged",
    "DamagedCellError",
    "RunStore",
    "Scan",
    "load",
    "read_cell",
    "read_tables",
]

@dataclass(frozen=True)
class Damaged:
    """A damaged cell file, why, and the file identity seen when it was judged."""

    path: Path
    reason: str
    inode: int
    mtime_ns: int

    @property
    def cell_id(self) -> str:
        """The cell the file is named after."""
        return self.path.name[: -len(SUFFIX)]


@dataclass(frozen=True)
class Scan:
    """What the cell folder holds: ``cell_id -> status`` of usable files, and the damaged ones."""

    finished: dict[str, str]
    damaged: tuple[Damaged, ...]


@dataclass(frozen=True)
class RunStore:
    """A run directory; creating the object writes nothing."""

    run_dir: Path

    @classmethod
    def at(cls, run_dir: str | Path) -> RunStore:
        """The store of ``run_dir`` (nothing is created until :meth:`create`)."""
        return cls(Path(run_dir))

    @property
    def cells_dir(self) -> Path:
        """One Parquet file per finished cell."""
        return self.run_dir / CELLS

    @property
    def corrupt_dir(self) -> Path:
        """Damaged cell files moved aside (each with a ``.why`` note)."""
        return self.cells_dir / CORRUPT

    @property
    def claims_dir(self) -> Path:
        """One file per cell a sweep is measuring now."""
        return self.run_dir / CLAIMS

    @property
    def logs_dir(self) -> Path:
        """Output of isolated cell processes, kept for diagnosis."""
        return self.run_dir / LOGS

    def cell_path(self, cell_id: str) -> Path:
        """Where the rows of ``cell_id`` live (the id must be a safe file name)."""
        check_cell_id(cell_id)
        return self.cells_dir / f"{cell_id}{SUFFIX}"

    def create(self) -> None:
        """Make the folders; called only after every parameter was checked."""
        for folder in (self.cells_dir, self.logs_dir, self.claims_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def locked(self) -> AbstractContextManager[None]:
        """Hold the run's lock (``flock`` on ``.lock``): one process at a time changes shared state."""
        return locked(self.run_dir)

    def clean_temporary(self) -> int:
        """Remove temporary files left by a killed writer (never a live one's); returns how many."""
        return remove_stale_temporary(self.run_dir, (self.run_dir, self.cells_dir))

    def cell_files(self) -> list[Path]:
        """Complete cell files (temporary files and ``cells/corrupt/`` excluded), sorted by name."""
        return cell_files(self.cells_dir)

    def scan(self) -> Scan:
        """Status of every usable cell file and the damaged ones (reads two columns per file)."""
        finished: dict[str, str] = {}
        damaged: list[Damaged] = []
        for path in self.cell_files():
            try:
                stat = path.stat()
                table = read_cell(path, columns=REQUIRED)
            except FileNotFoundError:  # moved aside by another sweep meanwhile
                continue
            except DamagedCellError as exc:
                damaged.append(Damaged(path, str(exc), stat.st_ino, stat.st_mtime_ns))
                continue
            finished[path.name[: -len(SUFFIX)]] = cell_status(table)
        return Scan(finished, tuple(damaged))

    def finished(self) -> dict[str, str]:
        """``cell_id -> status`` of every cell with a usable file (damaged files are left out)."""
        return self.scan().finished

    def cell_status(self, cell_id: str) -> str | None:
        """``ok``/``failed`` for a usable file of ``cell_id``, None when absent or damaged."""
        try:
            return cell_status(read_cell(self.cell_path(cell_id), columns=REQUIRED))
        except (DamagedCellError, FileNotFoundError):
            return None

    def quarantine(self, damaged: Iterable[Damaged]) -> list[Damaged]:
        """Move damaged files to ``cells/corrupt/`` (with a ``.why`` note); the ones moved.

        Under the run's lock, and only a file that is still the one judged
        damaged (same inode and mtime): another sweep may already have moved it
        and written the cell again.
        """
        moved: list[Damaged] = []
        with self.locked():
            for item in damaged:
                try:
                    stat = item.path.stat()
                except FileNotFoundError:
                    continue
                if (stat.st_ino, stat.st_mtime_ns) != (item.inode, item.mtime_ns):
                    continue
                self.corrupt_dir.mkdir(parents=True, exist_ok=True)
                target = self._free_name(self.corrupt_dir / item.path.name)
                os.rename(item.path, target)
                stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
                target.with_name(target.name + ".why").write_text(f"{stamp} {item.path.name}: {item.reason}\n")
                moved.append(item)
        return moved

    @staticmethod
    def _free_name(path: Path) -> Path:
        candidate, n = path, 0
        while candidate.exists():
            n += 1
            candidate = path.with_name(f"{path.name}.{n}")
        return candidate

    def write_cell(self, cell_id: str, frame: pd.DataFrame) -> Path:
        """Write one cell's rows atomically, conformed to the result schema; replaces an earlier file.

        Every row gets every schema column (:func:`nrg.sweep.runfolder.schema.to_arrow`),
        so failed and measured cells read back as one table.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        from nrg.sweep.runfolder.schema import to_arrow

        if len(frame) == 0:
            raise ValueError(f"cell {cell_id}: no rows to write (a failed cell writes one failed row)")
        path = self.cell_path(cell_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        sink = pa.BufferOutputStream()
        pq.write_table(to_arrow(frame), sink)
        atomic_write_bytes(path, sink.getvalue().to_pybytes())
        return path

    def keep_repeats(self, state: Mapping[str, Any]) -> Path:
        """Keep an unfinished cell's repeats (see :mod:`nrg.sweep.runfolder.checkpoints`)."""
        return checkpoints.keep(self.run_dir, state)

    def kept_repeats(self, cell_id: str) -> dict[str, Any] | None:
        """The kept repeats of ``cell_id`` (None: none, or unusable and warned about)."""
        return checkpoints.read(self.run_dir, cell_id)

    def drop_repeats(self, cell_id: str) -> None:
        """Forget the kept repeats of ``cell_id`` (its cell file is written, or it starts again)."""
        checkpoints.drop(self.run_dir, cell_id)

    def drop_finished_repeats(self, finished: Mapping[str, str]) -> int:
        """Remove kept repeats of cells whose file says ``ok`` (left when a sweep died in between)."""
        stale = [cid for cid in checkpoints.cell_ids(self.run_dir) if finished.get(cid) == "ok"]
        for cell_id in stale:
            checkpoints.drop(self.run_dir, cell_id)
        return len(stale)

    def last_run_order(self, cell_ids: Iterable[str]) -> int | None:
        """The highest ``run_order`` among the rows of ``cell_ids``, finished or kept; None if none.

        A resumed blocked sweep numbers its repeats after it, as the sweep it
        continues would have.
        """
        ids = set(cell_ids)
        orders: list[int] = []
        for path in self.cell_files():
            if path.name[: -len(SUFFIX)] in ids:
                try:
                    column = read_cell(path, columns=("run_order",)).to_pydict().get("run_order", [])
                except (DamagedCellError, FileNotFoundError):
                    continue
                orders.extend(int(v) for v in column if v is not None and v == v)
        for cell_id in ids & set(checkpoints.cell_ids(self.run_dir)):
            state = self.kept_repeats(cell_id) or {"rows": []}
            orders.extend(int(r["run_order"]) for r in state["rows"] if r.get("run_order") is not None)
        return max(orders, default=None)

    def drop_stale_claims(self) -> int:
        """Remove claim files whose sweep is gone (after ``kill -9``); returns how many.

        A stale claim would be taken over anyway; removing it keeps a folder
        whose cells are all finished free of leftovers.
        """
        import json

        removed = 0
        with self.locked():
            folder = self.claims_dir
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                try:
                    holder = json.loads(path.read_text())
                except FileNotFoundError:
                    continue
                except (OSError, ValueError):
                    holder = {}   # written half-way under this lock by a process that died
                if not isinstance(holder, dict) or not holder or locks.is_stale(holder):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or None when it is missing or unreadable (a sweep rebuilds it)."""
        return manifest.read(self.run_dir / MANIFEST)

    def open_session(
        self, name: str, chapter: str, config: Mapping[str, Any], provenance: Mapping[str, Any]
    ) -> str:
        """Record this invocation in the manifest (under the lock) and return the run's ``run_id``.

        The run_id is fixed when the run directory is first created, so rows
        written by a resumed sweep carry the same run_id as the earlier ones;
        a missing or unreadable manifest is rebuilt with the run_id of the rows.
        """
        with self.locked():
            return manifest.open_session(self.run_dir, name, chapter, config, provenance)

    def claim(self, cell_id: str) -> locks.CellLock:
        """Claim ``cell_id`` for this process (see :mod:`nrg.sweep.runfolder.locks`); check ``.ours``."""
        check_cell_id(cell_id)
        return locks.claim(self.run_dir, cell_id)


def _warn_damaged(path: Path, reason: str) -> None:
    warnings.warn(f"nrg: skipped damaged cell file {path}: {reason}", stacklevel=3)


def read_tables(store: RunStore, cell_ids: Iterable[str] | None = None) -> list[pa.Table]:
    """Every usable cell table of ``store`` (of ``cell_ids`` when given); damaged files warned about."""
    wanted = None if cell_ids is None else set(cell_ids)
    tables = []
    for path in store.cell_files():
        if wanted is not None and path.name[: -len(SUFFIX)] not in wanted:
            continue
        try:
            tables.append(read_cell(path))
        except FileNotFoundError:
            continue
        except DamagedCellError as exc:
            _warn_damaged(path, str(exc))
    return tables


def load(run_dir: str | Path, cell_ids: Iterable[str] | None = None,
         all_columns: bool = False) -> pd.DataFrame:
    """All rows of a run (of ``cell_ids`` when given) as one DataFrame, in schema column order.

    Never fails on a damaged cell file: it warns, names it and leaves it out.
    Columns are those the run's code wrote (a column no cell wrote is left
    out, as before the schema existed); ``all_columns=True`` gives every schema column.
    """
    import pandas as pd
    import pyarrow as pa

    from nrg.sweep.runfolder.schema import NAMES, align, written_columns

    store = RunStore.at(run_dir)
    if not store.run_dir.is_dir():
        raise FileNotFoundError(f"run_dir={str(run_dir)!r} does not exist")
    tables = read_tables(store, cell_ids)
    if not tables:
        return pd.DataFrame(columns=list(NAMES)) if all_columns else pd.DataFrame()
    written: set[str] = set()
    for table in tables:
        written.update(written_columns(table))
    table = pa.concat_tables([align(t).replace_schema_metadata(None) for t in tables],
                             promote_options="permissive")
    names = [n for n in table.column_names if all_columns or n in written]
    frame: pd.DataFrame = table.select(names).to_pandas()
    return frame
