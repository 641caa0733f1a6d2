"""Driver of "How energy is measured": this machine's meters, idle power, a calibration workload.

The workload is a float32 matmul of growing size, repeated until a minimum
window length (so no window is shorter than the meter's update period): more
work must give more joules, whatever the source, and the page shows by which
method each joule was obtained. Then one generation window is measured by nrg
and by codecarbon at once (:mod:`nrg.book.chapters.c00_how_energy_is_measured.codecarbon_compare`), and its
energy is converted to carbon and money (:mod:`nrg.book.carbon`).

A build of the book must not pay for these measurements again when nothing
they depend on changed: :class:`Measurements` keeps them in
``<runs>/00_how_energy_is_measured/measurements.pkl`` and reuses them while the
machine (its hardware and library versions, the energy sources chosen), the
parameters that shape a measurement and the measuring code are the same; the
page says so, with the date. ``remeasure=True`` (``-p remeasure true``) or
deleting the file measures again.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from nrg.book.chapters.c00_how_energy_is_measured.params import CHAPTER, MEASURED_PARAMS, Params
from nrg.book.common import runs_root
from nrg.errors import ParameterError, check_positive
from nrg.meters import EnergyMonitor

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from nrg.meters import Measurement
    from nrg.meters.protocols import Monitor

__all__ = ["CHAPTER", "ENTRIES", "MEASURED_PARAMS", "Params", "calibration", "chain_table", "open_monitor",
           "short_window"]

RECORD_FILE = "measurements.pkl"
# What a measurement depends on besides the machine: the parameters in MEASURED_PARAMS and this code.
MEASURING_CODE = ("meters", "book/chapters/c00_how_energy_is_measured")
# Provenance that identifies the machine (not the hostname, the time or a clock that moves under load).
MACHINE_KEYS = ("cpu", "cpu_cores", "mem_bytes", "gpu", "gpu_count", "driver", "power_limit_w_current",
                "python", "torch", "transformers")
# What the notebook measures (and :meth:`Measurements.get` names): all present, or measure again.
ENTRIES = ("idle", "calibration", "side_by_side")
T = TypeVar("T")


def open_monitor(params: Params, announce: bool = True) -> ChapterMonitor:
    """An EnergyMonitor for this machine's best sources (close it when done), with the chapter's measurements.

    Settings a killed run left changed (a locked GPU clock) are restored first:
    the chapter must not measure at a leftover clock. In a notebook,
    ``announce`` shows whether the measurements are reused or taken now.
    """
    from nrg.dvfs.recovery import recover_leftovers
    from nrg.meters import torch_cuda_sync

    recover_leftovers()

    options: dict[str, Any] = {"power_per_core_w": params.power_per_core_w} if params.power_per_core_w else {}
    monitor = ChapterMonitor.auto(meters=params.meters, sync=torch_cuda_sync(), **options)
    assert isinstance(monitor, ChapterMonitor)     # auto() builds its class
    try:
        monitor.measurements = Measurements.open(params, monitor)
    except BaseException:
        monitor.close()
        raise
    if announce:
        _show_note(monitor.measurements.note())
    return monitor


def chain_table(monitor: EnergyMonitor) -> pd.DataFrame:
    """One row per energy domain: the source chosen, its method, and what was skipped and why."""
    import pandas as pd

    rows = []
    for d in monitor.decisions:
        rows.append({
            "domain": d.domain,
            "chosen": d.chosen or "not measured",
            "method": d.method.value if d.method else "",
            "detail": d.detail or "",
            "skipped (why)": "; ".join(f"{src}: {why}" for src, why in d.skipped),
        })
    return pd.DataFrame(rows)


def _matmul(size: int) -> Callable[[], torch.Tensor]:
    import torch

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    return lambda: torch.mm(a, b)


def calibration(monitor: Monitor, sizes: Sequence[int], min_duration_s: float, repeats: int) -> pd.DataFrame:
    """Energy per matmul for each size, ``repeats`` windows each, with method and source.

    With a :class:`ChapterMonitor` the table is the kept one when it may be reused.
    """
    if isinstance(monitor, ChapterMonitor):
        args = (list(sizes), float(min_duration_s), int(repeats))
        return monitor.measurements.get("calibration", args,
                                        lambda: _calibration(monitor, sizes, min_duration_s, repeats))
    return _calibration(monitor, sizes, min_duration_s, repeats)


def _calibration(monitor: Monitor, sizes: Sequence[int], min_duration_s: float, repeats: int) -> pd.DataFrame:
    import pandas as pd

    from nrg.meters import repeat_until

    rows = []
    for size in sizes:
        work = _matmul(size)
        work()  # warm-up: first call allocates
        for repeat in range(repeats):
            m = repeat_until(monitor, work, name=f"matmul-{size}", min_duration_s=min_duration_s)
            record = m.to_record()
            per_iter_s = m.elapsed_s
            rows.append({
                "matrix_size": size, "repeat": repeat, "iterations": m.iterations,
                "gflop": 2 * size**3 / 1e9, "time_s": per_iter_s,
                "energy_j": record["energy_j"], "net_energy_j": record["net_energy_j"],
                "energy_method": record["energy_method"], "energy_source": record["energy_source"],
                "energy_warning": record["energy_warning"],
            })
    df = pd.DataFrame(rows)
    df["gflop_per_j"] = df["gflop"] / df["energy_j"]
    return df


def short_window(monitor: Monitor) -> Measurement | None:
    """A window far shorter than the update period: flagged, not returned as a silent 0 J."""
    with monitor.window("short") as w:
        time.sleep(0.0005)
    return w.measurement


class ChapterMonitor(EnergyMonitor):
    """The chapter's monitor: its idle power is the kept one when :attr:`measurements` may be reused."""

    measurements: Measurements

    def measure_idle(self, duration_s: float) -> dict[str, float]:
        """Measure idle power (or take the kept measurement) and use it as the baseline."""
        check_positive("duration_s", duration_s)
        power_w, idle = self.measurements.get("idle", float(duration_s), lambda: self._measure_idle(duration_s))
        self.set_idle_baseline(power_w)
        self.idle_measurement = idle
        return dict(power_w)

    def __enter__(self) -> ChapterMonitor:
        return self

    def _measure_idle(self, duration_s: float) -> tuple[dict[str, float], Measurement | None]:
        return super().measure_idle(duration_s), self.idle_measurement


@dataclass
class Record:
    """What the chapter measured, on which machine, with which parameters: kept for the next build."""

    key: str
    measured_at: str                                       # "YYYY-MM-DD HH:MM UTC"
    machine: dict[str, Any]
    params: dict[str, Any]
    results: dict[str, tuple[Any, Any]] = field(default_factory=dict)   # entry -> (arguments, value)


@dataclass
class Measurements:
    """The chapter's measurements: reused from :attr:`path` when the key matches, else taken and kept there.

    One object per record file and key in a process, so that every call of a
    notebook run (the comparison opens a monitor of its own) adds to one record.
    """

    path: Path
    record: Record
    reused: bool

    @classmethod
    def open(cls, params: Params, monitor: EnergyMonitor) -> Measurements:
        """The measurements for ``params`` on this machine, as the chain of ``monitor`` measures."""
        path = runs_root() / CHAPTER / RECORD_FILE
        machine = machine_identity(monitor)
        measured = params.measured()
        key = _digest({"machine": machine, "params": measured, "code": code_digest()})
        found = _OPEN.get((path, key))
        if found is not None and not (params.remeasure and found.reused):
            return found
        kept = None if params.remeasure else _load(path)
        reused = kept is not None and kept.key == key and all(name in kept.results for name in ENTRIES)
        record = kept if reused and kept is not None else Record(key, _now(), machine, measured)
        _OPEN[(path, key)] = made = cls(path, record, reused)
        return made

    def get(self, name: str, args: Any, measure: Callable[[], T]) -> T:
        """The kept value of ``name`` measured with ``args`` when reused, else ``measure()`` (then kept)."""
        kept = self.record.results.get(name)
        if self.reused and kept is not None and kept[0] == args:
            return cast(T, kept[1])
        value = measure()
        self.record.results[name] = (args, value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(self.record))
        tmp.replace(self.path)       # a reader never sees half a record
        return value

    def note(self) -> str:
        """What the page says about where its numbers come from."""
        where = _shown_path(self.path)
        if self.reused:
            return (f"Reused the measurements of {self.record.measured_at} (same machine and parameters); "
                    f"delete `{where}` or pass `-p remeasure true` to measure again.")
        return (f"Measured for this page on {self.record.measured_at}; a later build on the same machine with "
                f"the same parameters reuses these measurements (kept in `{where}`).")


_OPEN: dict[tuple[Path, str], Measurements] = {}


def machine_identity(monitor: EnergyMonitor) -> dict[str, Any]:
    """The machine as far as these measurements depend on it: hardware, versions, the sources chosen."""
    import importlib.metadata

    from nrg.meters import hardware

    provenance = hardware.provenance()
    machine = {name: provenance.get(name) for name in MACHINE_KEYS}
    try:
        machine["codecarbon"] = importlib.metadata.version("codecarbon")
    except importlib.metadata.PackageNotFoundError:
        machine["codecarbon"] = None
    machine["sources"] = [[d.domain, d.chosen, d.method.value if d.method else None] for d in monitor.decisions]
    return machine


def code_digest() -> str:
    """A digest of the code that measures (the meters, this chapter's folder: driver and comparison)."""
    package = Path(__file__).resolve().parents[3]
    digest = hashlib.sha256()
    for name in MEASURING_CODE:
        target = package / name
        for path in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _load(path: Path) -> Record | None:
    """The kept record, or None when there is none or it cannot be read (then it is measured again)."""
    try:
        record = pickle.loads(path.read_bytes())
    except Exception:   # missing, truncated, or written by other versions: measure again
        return None
    return record if isinstance(record, Record) else None


def _shown_path(path: Path) -> str:
    from nrg.book.paths import find_root

    try:
        return str(path.relative_to(find_root()))
    except (ParameterError, ValueError):
        return str(path)


def _show_note(text: str) -> None:
    """Show ``text`` as a note in a notebook (nothing elsewhere)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return
    from IPython.display import Markdown, display

    display(Markdown(f":::{{note}}\n{text}\n:::\n"))
