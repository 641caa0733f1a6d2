"""The repeats of a cell not yet finished, kept after each one so that a stopped sweep loses none.

Why: in the default blocked order every cell finishes in the last block, so a
sweep stopped half-way (Ctrl-C, ``kill -9``, a machine taken back) used to keep
nothing. After every repeat the sweep rewrites ``repeats/<cell_id>.json`` --
the rows measured so far, the samples the adaptive rule watches and the number
of repeats asked -- through a temporary file and an atomic rename, so the file
is always a whole state. A later sweep that claims the cell starts from it
(:meth:`nrg.sweep.schedule.blocks.CellRun.restore`), and the stop rule is applied to
the kept samples as if the sweep had never stopped.

The cell file stays the truth: :func:`nrg.sweep.runfolder.store.load` never reads these
files (kept rows are not results until their cell is finished), a cell's
checkpoint is removed once its file is written, and one left beside a
finished cell (the sweep died between the two) is removed at the next start.
A checkpoint that cannot be read is named in a warning and ignored: the cell
is measured from its first repeat, never with rows of unknown origin.
"""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nrg.sweep.runfolder.files import TMP_MARK, atomic_write_bytes, check_cell_id

REPEATS = "repeats"
SUFFIX = ".json"
FORMAT = 1


def path(run_dir: Path, cell_id: str) -> Path:
    """Where the kept repeats of ``cell_id`` live (the id must be a safe file name)."""
    check_cell_id(cell_id)
    return run_dir / REPEATS / f"{cell_id}{SUFFIX}"


def _plain(value: Any) -> object:
    """Numpy and torch scalars as JSON values (the rows of an in-process worker hold them)."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def keep(run_dir: Path, state: Mapping[str, Any]) -> Path:
    """Write a cell's state (:meth:`nrg.sweep.schedule.blocks.CellRun.state`) atomically; replaces the last one."""
    target = path(run_dir, str(state["cell_id"]))
    target.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"format": FORMAT, **state}, default=_plain, allow_nan=True)
    atomic_write_bytes(target, data.encode())
    return target


def read(run_dir: Path, cell_id: str) -> dict[str, Any] | None:
    """The kept state of ``cell_id``; None when there is none or it cannot be used (warned about)."""
    source = path(run_dir, cell_id)
    try:
        state = json.loads(source.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        _unusable(source, f"cannot be read: {type(exc).__name__}: {exc}")
        return None
    reason = _why_unusable(state, cell_id)
    if reason:
        _unusable(source, reason)
        return None
    return dict(state)


def _why_unusable(state: Any, cell_id: str) -> str:
    """Why a parsed checkpoint cannot be used ('' when it can)."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return f"not a checkpoint of this nrg (format {FORMAT})"
    if state.get("cell_id") != cell_id:
        return f"holds cell {state.get('cell_id')!r}, not {cell_id}"
    attempts, rows, samples = state.get("attempts"), state.get("rows"), state.get("samples")
    if not isinstance(attempts, int) or not isinstance(rows, list) or not isinstance(samples, list):
        return "lacks attempts, rows or samples"
    if any(not isinstance(r, dict) or r.get("cell_id", cell_id) != cell_id for r in rows):
        return "holds rows of another cell"
    if len(samples) > attempts or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in samples):
        return "its samples do not match its repeats"
    return ""


def _unusable(source: Path, reason: str) -> None:
    warnings.warn(f"nrg: ignored kept repeats {source}: {reason}; the cell is measured from its "
                  "first repeat", stacklevel=4)


def drop(run_dir: Path, cell_id: str) -> None:
    """Remove the cell's checkpoint and any temporary file of a writer killed mid-write.

    Only the process that holds the cell's claim calls this (or one that found
    the cell finished): no other sweep writes that cell's checkpoint meanwhile.
    """
    target = path(run_dir, cell_id)
    target.unlink(missing_ok=True)
    clean_temporary(run_dir, cell_id)


def clean_temporary(run_dir: Path, cell_id: str) -> None:
    """Remove temporary files left by a writer of this cell's checkpoint that was killed."""
    folder = run_dir / REPEATS
    if folder.is_dir():
        for leftover in folder.glob(f"{cell_id}{SUFFIX}{TMP_MARK}*"):
            leftover.unlink(missing_ok=True)


def cell_ids(run_dir: Path) -> list[str]:
    """Cells with kept repeats (temporary files left out)."""
    folder = run_dir / REPEATS
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(SUFFIX)] for p in folder.glob(f"*{SUFFIX}") if TMP_MARK not in p.name)


def kept_count(run_dir: Path, ids: Iterable[str]) -> int:
    """How many repeats are kept for the cells ``ids`` (unreadable checkpoints count none)."""
    wanted = set(ids)
    total = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cell_id in cell_ids(run_dir):
            state = read(run_dir, cell_id) if cell_id in wanted else None
            total += int(state["attempts"]) if state else 0
    return total
