"""Measure one cell: load, transform, warm up, repeat, and return tidy rows.

A cell never raises for a failure of the machine or the model: the error
becomes the cell's ``status``/``error`` row so a sweep goes on. Run as
``python -m nrg.cell SPEC.json`` it measures the cell described by a JSON spec
(see :func:`nrg.runner.cell_spec`) and writes its Parquet file atomically --
the same program whether the cell runs in a child process here or on another
machine.

Phases per repeat: ``prefill`` is ``generate`` of one token (a forward pass
over the prompt producing the first token: TTFT); ``generate`` produces
exactly ``output_tokens`` tokens (min = max new tokens); ``decode`` is
generate - prefill (time and energy per domain). Token counts: prefill counts
the prompt tokens it processes, decode and generate the tokens they produce.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import traceback
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.sweep import Cell

if TYPE_CHECKING:
    import pandas as pd

    from nrg.meters import Measurement


@dataclass(frozen=True)
class SweepContext:
    """What a sweep measured once and every cell needs (JSON-able, sent to cell processes)."""

    run_id: str
    chapter: str = ""
    idle_power_w: Mapping[str, float] = field(default_factory=dict)
    mem_bandwidth_bytes_per_s: float | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "chapter": self.chapter, "idle_power_w": dict(self.idle_power_w),
                "mem_bandwidth_bytes_per_s": self.mem_bandwidth_bytes_per_s,
                "provenance": dict(self.provenance)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepContext:
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


def run_cell(cell: Cell, context: SweepContext,
             monitor_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """All rows of ``cell``; a failure gives one row with ``status``/``error`` instead."""
    try:
        return _measure(cell, context, monitor_options)
    except Exception as exc:  # noqa: BLE001 - any failure of the cell is data
        tail = traceback.format_exc(limit=-3)
        return failed_frame(cell, context, f"{type(exc).__name__}: {exc}\n{tail}", _status_of(exc))


# ------------------------------------------------------------------ steps


def load_model(cell: Cell) -> Any:
    from nrg.models import ModelSpec, load

    m = cell.model
    spec = ModelSpec(name=m.name, weights=m.weights, dtype=cell.dtype, device=cell.settings.device,
                     layers=m.layers, overrides=m.overrides, tiny=m.tiny)
    return load(spec)


def apply_transforms(loaded: Any, cell: Cell) -> tuple[Any, dict[str, Any]]:
    """Apply each extra axis' ``transform`` in config order; collect their columns."""
    from nrg import axes

    columns: dict[str, Any] = {}
    for name, value in cell.axes:
        axis = axes.get(name)
        if axis.transform is None or value == axis.default:
            continue
        result, extra = axis.transform(loaded, value)
        if result is not loaded and hasattr(result, "parameters"):  # a bare module came back
            loaded = dataclasses.replace(loaded, model=result)
        elif result is not loaded:
            loaded = result
        columns.update(extra)
    return loaded, columns


def enter_environments(stack: ExitStack, cell: Cell) -> list[Callable[[], dict[str, Any]]]:
    from nrg import axes

    observers = []
    for name, value in cell.axes:
        axis = axes.get(name)
        if axis.environment is not None:
            observers.append(stack.enter_context(axis.environment(value)))
    return observers


def with_idle(m: Measurement, idle_power_w: Mapping[str, float]) -> Measurement:
    """Attach the sweep's idle baseline to domains that have none."""
    domains = tuple(
        dataclasses.replace(d, idle_power_w=idle_power_w[d.domain])
        if d.idle_power_w is None and d.domain in idle_power_w else d
        for d in m.domains
    )
    return dataclasses.replace(m, domains=domains)


def difference(total: Measurement, part: Measurement, name: str) -> Measurement:
    """``total - part`` per domain: decode = generate - prefill."""
    part_j = {d.domain: d.energy_j for d in part.domains}
    domains = tuple(dataclasses.replace(d, energy_j=d.energy_j - part_j.get(d.domain, math.nan))
                    for d in total.domains)
    reasons = [r for r in (total.invalid_reason, part.invalid_reason) if r]
    elapsed_s = total.elapsed_s - part.elapsed_s
    warnings = list(dict.fromkeys(total.warnings + part.warnings))
    if elapsed_s <= 0:  # kept as measured: hiding it would bias the mean
        warnings.append(f"{name} = {total.name} - {part.name} is {elapsed_s:.3g} s: "
                        "timing noise exceeds this phase")
    return dataclasses.replace(
        total, name=name, elapsed_s=elapsed_s, domains=domains,
        valid=total.valid and part.valid, invalid_reason="; ".join(reasons) or None,
        warnings=tuple(warnings))


def peak_memory_bytes(device: str) -> int:
    """CUDA: max allocated since the cell's reset; CPU: the process' peak RSS.

    The RSS peak is per cell only when the cell has its own process
    (``isolate: true``); in-process runs report the peak of the whole process so far.
    """
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated(torch.device(device)))
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _measure(cell: Cell, context: SweepContext,
             monitor_options: Mapping[str, Any] | None) -> pd.DataFrame:
    from nrg.measure import measure_cell

    return measure_cell(cell, context, monitor_options)


# ------------------------------------------------------------------ process entry


def main(argv: list[str] | None = None) -> int:
    """``python -m nrg.cell SPEC.json``: measure one cell and write its file."""
    import argparse

    from nrg.store import RunStore

    parser = argparse.ArgumentParser(prog="python -m nrg.cell", description=main.__doc__)
    parser.add_argument("spec", help="JSON file with cell, context and run_dir")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="exit when this process dies (no orphans after kill -9 of a sweep)")
    ns = parser.parse_args(argv)
    if ns.parent_pid:
        _watch_parent(ns.parent_pid)
    spec = json.loads(Path(ns.spec).read_text())
    cell = Cell.from_dict(spec["cell"])
    frame = run_cell(cell, SweepContext.from_dict(spec["context"]))
    RunStore.at(spec["run_dir"]).write_cell(cell.cell_id, frame)
    return 0


def _watch_parent(parent_pid: int) -> None:
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(3)

    threading.Thread(target=watch, name="nrg-parent-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
