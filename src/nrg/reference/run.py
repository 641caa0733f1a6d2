"""``nrg reference``: the book's GPU measurements in one time-budgeted call that changes no setting.

Why a budget: a lent GPU comes for minutes, one command at most ten; a run
that overshoots loses everything it had not written. Before each cell the
estimate of :mod:`nrg.reference.estimate` (refined by every finished cell)
must fit in what is left of the budget minus a margin -- else the cell is
left for a later run and the reason is recorded. A cell that outruns its
estimate is stopped at the budget (an isolated cell's process is stopped)
and recorded as *stopped*: the run that gave it its time knows it used all
of it, and ``reference-state.json`` (:mod:`nrg.reference.state`) lists it.

Order, in rounds: the cells the last run's budget stopped, first; then the
meters and one ok cell of each part of :mod:`nrg.reference.parts` (at most
two tries per part), so that even a short turn on a GPU brings back some
data for every chapter; then everything else in priority order. Cells that
failed in an earlier run are reused as failed unless ``retry_failed``. The
estimator's corrections are kept in the folder and taken by a rerun on the
same machine. Everything is built on :func:`nrg.sweep.run.run_sweep`, one
run folder per chapter, so a rerun with the same folder resumes where the
last one stopped. No GPU, CPU or clock setting is ever changed: the sweeps
only observe (their DVFS axes are None).

The summary (``summary.json``, ``summary.md``; :mod:`nrg.reference.report`)
says what ran, what was reused, what did not run and why, and the
estimator's corrections. :mod:`nrg.reference.plan` says beforehand what a
budget would buy on a given GPU.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrg.errors import ParameterError
from nrg.reference import state as reference_state
from nrg.reference.estimate import Estimator, peak_bandwidth
from nrg.reference.parts import Part, parts
from nrg.reference.report import ARCHIVE_LIMIT_BYTES, STOPPED, archive, summary_text, write_summary
from nrg.sweep.schedule.signals import TERM_GRACE_S

__all__ = ["ARCHIVE_LIMIT_BYTES", "STOPPED", "Budget", "CellRecord", "archive", "check", "run", "summary_text",
           "write_summary"]

#: Cells a part may start in the first round while none of its cells came back ok.
FIRST_ROUND_TRIES = 2
DEVICES = ("cuda", "cpu")


@dataclass
class Budget:
    """Seconds allowed from ``started`` (a perf_counter time), and the reserve kept at the end."""

    total_s: float
    margin_s: float
    started: float = field(default_factory=time.perf_counter)

    def elapsed_s(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started

    def remaining_s(self) -> float:
        """Seconds left of the budget (negative once it is spent)."""
        return self.total_s - self.elapsed_s()

    def fits(self, estimate_s: float) -> bool:
        """Whether work of ``estimate_s`` seconds ends before the budget minus the margin."""
        return estimate_s <= self.remaining_s() - self.margin_s


@dataclass
class CellRecord:
    """What happened to one planned cell (or part) in this run."""

    part: str
    name: str
    decision: str                     # ran | reused | not run
    result: str | None = None         # ok | failed | unsupported | stopped (ran or reused)
    estimate_s: float | None = None
    remaining_s: float | None = None  # budget left when the decision was taken
    actual_s: float | None = None
    reason: str = ""
    started_s: float | None = None    # seconds into the run when it started (ran only)


def check(budget_s: Any, out: Any, device: str = "cuda", margin_s: Any = None,
          need_device: bool = True) -> dict[str, Any]:
    """Checked parameters (nothing is written or measured); ``need_device``: CUDA must be here."""
    if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not budget_s > 0:
        raise ParameterError(f"budget_s={budget_s!r} is not valid; it must be a number of seconds > 0")
    kind = device.split(":")[0]
    if kind not in DEVICES or (":" in device and not device.split(":")[1].isdigit()):
        raise ParameterError(f"device={device!r} is not valid; choose one of: 'cuda', 'cuda:N', 'cpu'")
    margin = max(5.0, 0.05 * float(budget_s)) if margin_s is None else margin_s
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < budget_s:
        raise ParameterError(f"margin_s={margin_s!r} is not valid; it must be >= 0 and below budget_s")
    if kind == "cuda" and need_device:
        import torch

        if not torch.cuda.is_available():
            raise ParameterError(f"device={device!r} is not valid here: CUDA is not available; use device='cpu'")
    return {"budget_s": float(budget_s), "margin_s": float(margin),
            "out": None if out is None else Path(out).expanduser(), "device": device}


def _cell_label(cell: Any) -> str:
    axes = ", ".join(f"{k}={v}" for k, v in cell.axes if v is not None)
    task = "" if cell.task.name == "none" else f" {cell.task.name}"
    return f"{cell.model.name}{task} in={cell.input_tokens} out={cell.output_tokens}" + (f" {axes}" if axes else "")


class _Run:
    """One ``run()``: its budget, estimator, records and folder state, and which cells it has decided."""

    def __init__(self, out_dir: Path, budget: Budget, estimator: Estimator, state: reference_state.State,
                 retry_failed: bool, progress: bool) -> None:
        self.out_dir, self.budget, self.estimator, self.state = out_dir, budget, estimator, state
        self.retry_failed, self.progress = retry_failed, progress
        self.records: list[CellRecord] = []
        self.handled: set[str] = set()            # keys (chapter/cell id) ran or recorded in this run
        self.with_data: set[str] = set()          # parts with an ok cell (earlier or now)
        self.tries: dict[str, int] = {}           # cells started per part in the first round
        self.one_per_part = False                 # stop after the first round

    def save(self) -> None:
        """Persist the corrections and the stopped cells (after every cell: a kill loses nothing)."""
        self.state.corrections = self.estimator.corrections()
        reference_state.save(self.out_dir, self.state)


class _Gate:
    """``run_sweep``'s gate for one config: starts only ``allowed`` cells that fit, learns from each."""

    def __init__(self, part: Part, run_dir: Path, run: _Run, allowed: set[str], quiet: bool) -> None:
        self.part, self.run_dir, self.run, self.allowed, self.quiet = part, run_dir, run, allowed, quiet
        self.current: tuple[Any, CellRecord, float, float] | None = None

    def finish(self) -> None:
        """Read the cell that just ran, record its result (stopped: the sweep says it stopped it) and learn."""
        if self.current is None:
            return
        cell, record, started, allowed_s = self.current
        self.current = None
        record.actual_s = time.perf_counter() - started
        from nrg.sweep.runfolder.store import RunStore

        path = RunStore.at(self.run_dir).cell_path(cell.cell_id)
        if not path.is_file():
            record.result, record.reason = "failed", "no result written"
            return
        import pandas as pd

        rows = pd.read_parquet(path)
        errors = [str(e) for e in rows.get("error", pd.Series(dtype=object)).dropna()]
        record.result = str(rows["status"].iloc[0])
        record.reason = errors[0].splitlines()[0] if errors else record.reason
        stopped, key = self.run.state.stopped, _key(self.part, cell)
        if record.result != "ok" and errors and _stopped_at(errors[0], allowed_s):
            again = " again (retried first)" if key in stopped else ""
            record.result = STOPPED
            record.reason = f"stopped at the budget{again} after {allowed_s:.0f} s; the next run retries it first"
            stopped[key] = {"part": self.part.name, "name": record.name, "allowed_s": allowed_s}
        else:
            stopped.pop(key, None)
        if record.result == "ok":
            self.run.with_data.add(self.part.name)
        self.run.estimator.observe(cell, rows, record.actual_s)
        self.run.save()

    def __call__(self, cell: Any) -> float | None:
        self.finish()
        run, key = self.run, _key(self.part, cell)
        if cell.cell_id not in self.allowed or key in run.handled:
            return None
        if self.quiet and key not in run.state.stopped and (
                self.part.name in run.with_data or run.tries.get(self.part.name, 0) >= FIRST_ROUND_TRIES):
            return None                            # the first round wants one ok cell per part, in two tries
        estimate = run.estimator.estimate(cell).total_s
        remaining = run.budget.remaining_s()
        record = CellRecord(self.part.name, _cell_label(cell), "ran", estimate_s=estimate, remaining_s=remaining)
        if not run.budget.fits(estimate):
            if self.quiet:
                return None                        # decided (and recorded) in the last round
            record.decision = "not run"
            record.reason = (f"budget: estimated {estimate:.0f} s > {remaining:.0f} s left "
                             f"- {run.budget.margin_s:.0f} s margin")
        run.handled.add(key)
        run.records.append(record)
        if record.decision == "not run":
            return None
        if key in run.state.stopped:
            record.reason = "stopped at the budget in an earlier run: retried first"
        record.started_s = run.budget.elapsed_s()
        run.tries[self.part.name] = run.tries.get(self.part.name, 0) + 1
        allowed_s = max(remaining - max(run.budget.margin_s / 2, TERM_GRACE_S), 1.0)   # its stop ends in time
        self.current = (cell, record, time.perf_counter(), allowed_s)
        return allowed_s


def _key(part: Part, cell: Any) -> str:
    """A cell's key in this run and in the state file: the same cell may be planned by two chapters."""
    return f"{part.chapter}/{cell.cell_id}"


def _stopped_at(error: str, allowed_s: float) -> bool:
    """Whether a cell's error is the sweep's own record of stopping it after ``allowed_s``.

    The text is made by the function that writes it (:func:`nrg.sweep.schedule.cell.exit_reason`)
    for the time this run gave the cell, so a change of wording cannot break it.
    """
    from nrg.sweep.schedule.cell import exit_reason

    return error.startswith(exit_reason(None, allowed_s))


def _failed_errors(run_dir: Path) -> dict[str, str]:
    """Error text of every cell already in the run folder that is not ok."""
    from nrg.sweep.runfolder.store import RunStore

    store = RunStore.at(run_dir)
    out: dict[str, str] = {}
    for cell_id, status in store.finished().items():
        if status != "ok":
            import pandas as pd

            rows = pd.read_parquet(store.cell_path(cell_id), columns=["error"])
            out[cell_id] = str(rows["error"].dropna().iloc[0]) if rows["error"].notna().any() else status
    return out


def _candidates(part: Part, cells: list[Any], run_dir: Path, run: _Run, quiet: bool) -> list[Any]:
    """Cells of a config this round may start; the full round records what it reuses."""
    from nrg.sweep.runfolder.store import RunStore

    done, failed = RunStore.at(run_dir).finished(), _failed_errors(run_dir)
    todo = []
    for cell in cells:
        key = _key(part, cell)
        if key in run.handled:
            continue
        retry = run.retry_failed or key in run.state.stopped
        if done.get(cell.cell_id) == "ok" or (cell.cell_id in failed and not retry):
            if not quiet:
                ok = done.get(cell.cell_id) == "ok"
                run.handled.add(key)
                run.records.append(CellRecord(
                    part.name, _cell_label(cell), "reused", "ok" if ok else "failed",
                    reason="finished in an earlier run" if ok else "failed in an earlier run (not retried; "
                    "--retry-failed retries it): " + failed[cell.cell_id][:200]))
            continue
        todo.append(cell)
    return todo


def _run_config(part: Part, config: dict[str, Any], run: _Run, allow: Any, quiet: bool = False) -> None:
    """Run the ``allow``-ed cells of one config that fit; ``quiet``: an early round records only what ran."""
    from nrg.sweep.config import parse_config
    from nrg.sweep.run import run_sweep

    run_dir = run.out_dir / part.chapter
    todo = [c for c in _candidates(part, parse_config(config).cells(), run_dir, run, quiet) if allow(c)]
    if not todo:
        return
    if not any(run.budget.fits(run.estimator.estimate(c).total_s) for c in todo):
        for c in todo if not quiet else ():
            run.handled.add(_key(part, c))
            run.records.append(CellRecord(part.name, _cell_label(c), "not run",
                                          estimate_s=run.estimator.estimate(c).total_s,
                                          remaining_s=run.budget.remaining_s(),
                                          reason="budget: no cell of this sweep fits"))
        return
    gate = _Gate(part, run_dir, run, {c.cell_id for c in todo}, quiet)
    try:
        run_sweep(config, run_dir, progress=run.progress, retry_failed=True, gate=gate)
    except ParameterError as exc:
        if not quiet:
            run.records.append(CellRecord(part.name, config["name"], "not run",
                                          reason=f"refused before any work: {exc}"))
    finally:
        gate.finish()


def _run_meters(part: Part, out: Path, budget: Budget, records: list[CellRecord]) -> None:
    from nrg.reference import meters as reference_meters

    assert part.meters is not None
    folder = out / part.chapter
    result_path = folder / reference_meters.RESULT
    if result_path.is_file() and json.loads(result_path.read_text()).get("status") == "measured":
        records.append(CellRecord(part.name, part.what, "reused", "ok", reason="measured in an earlier run"))
        return
    estimate, remaining = part.meters.estimate_s(), budget.remaining_s()
    record = CellRecord(part.name, part.what, "ran", estimate_s=estimate, remaining_s=remaining)
    records.append(record)
    if not budget.fits(estimate):
        record.decision, record.reason = "not run", f"budget: estimated {estimate:.0f} s > {remaining:.0f} s left - margin"
        return
    started, record.started_s = time.perf_counter(), budget.elapsed_s()
    try:
        result = reference_meters.measure(part.meters, folder)
    except Exception as exc:  # a broken meter must not cost the other parts
        record.result, record.reason = "failed", f"{type(exc).__name__}: {exc}"
    else:
        record.result = "ok" if result["status"] == "measured" else "unsupported"
        record.reason = result.get("reason", "")
    record.actual_s = time.perf_counter() - started


def _parts_with_data(planned: list[Part], out_dir: Path) -> set[str]:
    """Parts whose folder already holds an ok cell of one of their configs."""
    from nrg.sweep.config import parse_config
    from nrg.sweep.runfolder.store import RunStore

    found = set()
    for part in planned:
        done = RunStore.at(out_dir / part.chapter).finished() if part.configs else {}
        ids = {c.cell_id for config in part.configs for c in parse_config(config).cells()}
        if any(done.get(i) == "ok" for i in ids):
            found.add(part.name)
    return found


def _rounds(planned: list[Part], run: _Run) -> None:
    """Stopped cells first; then one ok cell per part (at most two tries each); then all, in priority order."""
    if run.state.stopped:
        for part in planned:
            for config in part.configs:
                _run_config(part, config, run, lambda c, p=part: _key(p, c) in run.state.stopped, quiet=True)
    for part in planned:
        if part.meters is not None:
            _run_meters(part, run.out_dir, run.budget, run.records)
        for config in part.configs:
            _run_config(part, config, run, lambda c, p=part: p.name not in run.with_data
                        and run.tries.get(p.name, 0) < FIRST_ROUND_TRIES, quiet=True)
    for part in planned:
        for config in part.configs:
            if run.one_per_part:
                _leave_out(part, config, run)
            else:
                _run_config(part, config, run, lambda c: True)


def _leave_out(part: Part, config: dict[str, Any], run: _Run) -> None:
    """Record what ``one_per_part`` leaves for a full run (what is done is recorded as reused)."""
    from nrg.sweep.config import parse_config

    for cell in _candidates(part, parse_config(config).cells(), run.out_dir / part.chapter, run, quiet=False):
        run.handled.add(_key(part, cell))
        run.records.append(CellRecord(part.name, _cell_label(cell), "not run",
                                      reason="left for a full run (one_per_part: one ok cell per part)"))


def run(budget_s: float, out: str | Path, device: str = "cuda", margin_s: float | None = None,
        progress: bool = False, retry_failed: bool = False, one_per_part: bool = False,
        chapters: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure what fits in ``budget_s`` seconds into ``out``; write and return the summary.

    ``retry_failed``: cells that failed in an earlier run are run again (as ``nrg sweep
    --retry-failed``); cells the budget stopped always are, first. ``one_per_part``: only
    the first rounds (stopped cells, the meters, one ok cell per part): a quick check of
    the whole path on a machine. ``chapters`` (stems): only those chapters' parts
    (checked before anything is written).
    """
    params = check(budget_s, out, device, margin_s)
    planned = parts(device, chapters)          # a bad chapter is refused before anything is written
    budget = Budget(params["budget_s"], params["margin_s"])
    out_dir: Path = params["out"]
    state = reference_state.load(out_dir, reference_state.machine_key(device))
    estimator = Estimator(device, peak_bandwidth_bytes_per_s=_local_bandwidth(device))
    estimator.restore(state.corrections)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_ = _Run(out_dir, budget, estimator, state, bool(retry_failed), progress)
    run_.one_per_part = bool(one_per_part)
    run_.with_data = _parts_with_data(planned, out_dir)
    for part in planned:
        run_.records += [CellRecord(part.name, what, "not run", reason=f"not possible here: {why}")
                         for what, why in part.left_out]
    _rounds(planned, run_)
    run_.save()
    params.update(retry_failed=bool(retry_failed), one_per_part=bool(one_per_part), estimator_from=state.note,
                  chapters=None if chapters is None else list(chapters))
    return write_summary(out_dir, params, budget, estimator, planned, _ordered(planned, run_.records))


def _ordered(planned: list[Part], records: list[CellRecord]) -> list[CellRecord]:
    """Records grouped by part in priority order, in the order they were decided within a part."""
    rank = {p.name: i for i, p in enumerate(planned)}
    return sorted(records, key=lambda r: rank.get(r.part, len(rank)))


def _local_bandwidth(device: str) -> float | None:
    """The data-sheet bandwidth of the local GPU (None on the CPU or for a GPU not in the table)."""
    if not device.startswith("cuda"):
        return None
    import torch

    return peak_bandwidth(torch.cuda.get_device_name(int(device.split(":")[1]) if ":" in device else 0))
