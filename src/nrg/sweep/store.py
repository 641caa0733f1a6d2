"""Results on disk: one tidy Parquet file per cell plus a run manifest.

Why one file per cell: a sweep can be killed at any moment (``kill -9``, a
machine that goes away) and must resume with no lost and no duplicate rows.
A cell's rows are written to a temporary name in the same folder and renamed
onto ``<cell_id>.parquet`` -- a rename is atomic on POSIX, so a cell file is
either complete or absent, and a rerun skips exactly the cells whose file
exists. Temporary files of a killed writer are ignored by :func:`load` and
removed by the next run.

Layout of a run directory::

    manifest.json          run_id, name, chapter, config, one entry per session
    cells/<cell_id>.parquet
    logs/<cell_id>.log     stderr of isolated cells (kept for diagnosis)
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "manifest.json"
CELLS = "cells"
LOGS = "logs"
SUFFIX = ".parquet"
TMP_MARK = ".tmp-"
_CELL_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
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


def _check_cell_id(cell_id: str) -> None:
    if not _CELL_ID.match(cell_id) or TMP_MARK in cell_id:
        raise ValueError(f"cell_id={cell_id!r} is not a safe file name")


@dataclass(frozen=True)
class RunStore:
    """A run directory; creating the object writes nothing."""

    run_dir: Path

    @classmethod
    def at(cls, run_dir: str | Path) -> RunStore:
        """The store of an existing or future run directory."""
        return cls(Path(run_dir))

    @property
    def cells_dir(self) -> Path:
        """The folder holding one Parquet file per finished cell."""
        return self.run_dir / CELLS

    @property
    def logs_dir(self) -> Path:
        """The folder holding each cell subprocess's log."""
        return self.run_dir / LOGS

    def cell_path(self, cell_id: str) -> Path:
        """The Parquet file of one cell; refuses ids that are not safe file names."""
        _check_cell_id(cell_id)
        return self.cells_dir / f"{cell_id}{SUFFIX}"

    def create(self) -> None:
        """Make the folders; called only after every parameter was checked."""
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)

    def clean_temporary(self) -> int:
        """Remove temporary files left by a killed writer; returns how many."""
        removed = 0
        for folder in (self.run_dir, self.cells_dir):
            if folder.is_dir():
                for path in folder.iterdir():
                    if TMP_MARK in path.name:
                        path.unlink(missing_ok=True)
                        removed += 1
        return removed

    def finished(self) -> dict[str, str]:
        """``cell_id -> status`` of every cell with a complete file."""
        out: dict[str, str] = {}
        if not self.cells_dir.is_dir():
            return out
        import pyarrow.parquet as pq

        for path in sorted(self.cells_dir.glob(f"*{SUFFIX}")):
            if TMP_MARK in path.name:
                continue
            table = pq.read_table(path, columns=["status"])
            statuses = set(table.column("status").to_pylist())
            out[path.name[: -len(SUFFIX)]] = "ok" if statuses == {"ok"} else "failed"
        return out

    def write_cell(self, cell_id: str, frame: pd.DataFrame) -> Path:
        """Write one cell's rows atomically; replaces an earlier file of the same cell."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.cell_path(cell_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        _atomic_write_bytes(path, sink.getvalue().to_pybytes())
        return path

    def read_manifest(self) -> dict[str, Any] | None:
        """The run's manifest (sessions, config, provenance), or None before the first session."""
        path = self.run_dir / MANIFEST
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def open_session(
        self, name: str, chapter: str, config: Mapping[str, Any], provenance: Mapping[str, Any]
    ) -> str:
        """Record this invocation in the manifest and return the run's ``run_id``.

        The run_id is fixed when the run directory is first created, so rows
        written by a resumed sweep carry the same run_id as the earlier ones.
        """
        manifest = self.read_manifest() or {}
        now = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        run_id = manifest.get("run_id") or f"{name}-{now}"
        sessions = list(manifest.get("sessions", []))
        sessions.append({"started_at": now, "config": dict(config), "provenance": dict(provenance)})
        manifest.update(
            {"run_id": run_id, "name": name, "chapter": chapter, "config": dict(config),
             "sessions": sessions}
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
        _atomic_write_bytes(self.run_dir / MANIFEST, data)
        return run_id


def load(run_dir: str | Path) -> pd.DataFrame:
    """All rows of a run as one DataFrame (temporary files are ignored).

    Rows keep the column order of the first cell; columns that a cell lacks
    (a failed cell has no measures) are missing values.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    store = RunStore.at(run_dir)
    if not store.run_dir.is_dir():
        raise FileNotFoundError(f"run_dir={str(run_dir)!r} does not exist")
    frames = [
        pq.read_table(path).to_pandas()
        for path in sorted(store.cells_dir.glob(f"*{SUFFIX}"))
        if TMP_MARK not in path.name
    ]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    return pd.concat(frames, ignore_index=True, sort=False)
