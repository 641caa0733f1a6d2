"""What every row of a cell carries, and what a sweep measured once for all its cells.

Kept apart from :mod:`nrg.sweep.schedule.cell` (process entry) and
:mod:`nrg.workloads.generation` (the measured path) so both can build rows --
measured or failed -- without importing each other.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nrg.sweep.config import Cell

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class SweepContext:
    """What a sweep measured once and every cell needs (JSON-able, sent to cell processes)."""

    run_id: str
    chapter: str = ""
    idle_power_w: Mapping[str, float] = field(default_factory=dict)
    mem_bandwidth_bytes_per_s: float | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    run_dir: str | None = None    # where a workload may keep files shared by cells (cache/)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, so the context reaches a cell subprocess as JSON."""
        return {"run_id": self.run_id, "chapter": self.chapter, "idle_power_w": dict(self.idle_power_w),
                "mem_bandwidth_bytes_per_s": self.mem_bandwidth_bytes_per_s,
                "provenance": dict(self.provenance), "run_dir": self.run_dir}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepContext:
        """Inverse of :meth:`to_dict`."""
        return cls(**dict(d))


def identity(cell: Cell, context: SweepContext, status: str = "ok", error: str | None = None
             ) -> dict[str, Any]:
    """Columns every row of a cell carries, failed or not."""
    return {"run_id": context.run_id, "chapter": context.chapter, "cell_id": cell.cell_id,
            "status": status, "error": error, **cell.factors(), **dict(context.provenance)}


def failed_frame(cell: Cell, context: SweepContext, error: str, status: str = "failed") -> pd.DataFrame:
    """The one row a failed cell keeps."""
    import pandas as pd

    row = {**identity(cell, context, status, error), "repeat": None, "phase": None}
    return pd.DataFrame([row])


def _status_of(exc: BaseException) -> str:
    return "unsupported" if isinstance(exc, NotImplementedError) else "failed"
