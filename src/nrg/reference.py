"""``nrg reference``: the book's GPU measurements in one time-budgeted call that changes no setting.

Why a budget: a lent GPU comes for minutes, one command at most ten; a run
that overshoots loses everything it had not written. So the parts of
:mod:`nrg.reference_parts` run in priority order, and before each cell the
estimate of :mod:`nrg.reference_estimate` (refined by every finished cell)
must fit in what is left of the budget minus a margin -- else the cell is
left for a later run and the reason is recorded. A cell that outruns its
estimate is stopped at the budget (isolated cells are killed; the row says
so) and is retried by the next run. Everything is built on
:func:`nrg.sweep.run.run_sweep`, one run folder per chapter, so a rerun with
the same folder resumes where the last one stopped. No GPU, CPU or clock
setting is ever changed: the sweeps only observe (their DVFS axes are None).

The summary (``summary.json``, ``summary.md``) says what ran, what was reused,
what did not run and why, and the estimator's corrections.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nrg.errors import ParameterError
from nrg.reference_estimate import Estimator
from nrg.reference_parts import Part, parts

KILLED = "cell process killed after cell_timeout_s"
ARCHIVE_LIMIT_BYTES = 16 * 2**20
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
    result: str | None = None         # ok | failed | unsupported | killed (ran or reused)
    estimate_s: float | None = None
    remaining_s: float | None = None  # budget left when the decision was taken
    actual_s: float | None = None
    reason: str = ""


def check(budget_s: Any, out: Any, device: str = "cuda", margin_s: Any = None) -> dict[str, Any]:
    """Checked parameters (nothing is written or measured)."""
    if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not budget_s > 0:
        raise ParameterError(f"budget_s={budget_s!r} is not valid; it must be a number of seconds > 0")
    kind = device.split(":")[0]
    if kind not in DEVICES or (":" in device and not device.split(":")[1].isdigit()):
        raise ParameterError(f"device={device!r} is not valid; choose one of: 'cuda', 'cuda:N', 'cpu'")
    margin = max(5.0, 0.05 * float(budget_s)) if margin_s is None else margin_s
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < budget_s:
        raise ParameterError(f"margin_s={margin_s!r} is not valid; it must be >= 0 and below budget_s")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ParameterError(f"device={device!r} is not valid here: CUDA is not available; use device='cpu'")
    return {"budget_s": float(budget_s), "margin_s": float(margin), "out": Path(out).expanduser(),
            "device": device}


def _cell_label(cell: Any) -> str:
    axes = ", ".join(f"{k}={v}" for k, v in cell.axes if v is not None)
    task = "" if cell.task.name == "none" else f" {cell.task.name}"
    return f"{cell.model.name}{task} in={cell.input_tokens} out={cell.output_tokens}" + (f" {axes}" if axes else "")


class _Gate:
    """``run_sweep``'s gate for one config: decides each cell against the budget, learns from the last."""

    def __init__(self, part: Part, run_dir: Path, estimator: Estimator, budget: Budget,
                 records: list[CellRecord], failed: dict[str, str]) -> None:
        self.part, self.run_dir, self.estimator, self.budget = part, run_dir, estimator, budget
        self.records, self.failed = records, failed
        self.current: tuple[Any, CellRecord, float] | None = None

    def finish(self) -> None:
        """Read the cell that just ran, record its result and feed the estimator."""
        if self.current is None:
            return
        cell, record, started = self.current
        self.current = None
        record.actual_s = time.perf_counter() - started
        from nrg.sweep.store import RunStore

        path = RunStore.at(self.run_dir).cell_path(cell.cell_id)
        if not path.is_file():
            record.result, record.reason = "failed", "no result written"
            return
        import pandas as pd

        rows = pd.read_parquet(path)
        errors = [str(e) for e in rows.get("error", pd.Series(dtype=object)).dropna()]
        record.result = "killed" if errors and errors[0].startswith(KILLED) else str(rows["status"].iloc[0])
        record.reason = errors[0].splitlines()[0] if errors else ""
        self.estimator.observe(cell, rows, record.actual_s)

    def __call__(self, cell: Any) -> float | None:
        self.finish()
        label = _cell_label(cell)
        if cell.cell_id in self.failed and not self.failed[cell.cell_id].startswith(KILLED):
            self.records.append(CellRecord(self.part.name, label, "reused", "failed", reason="failed in an "
                                           "earlier run (not retried): " + self.failed[cell.cell_id][:200]))
            return None
        estimate = self.estimator.estimate(cell).total_s
        remaining = self.budget.remaining_s()
        record = CellRecord(self.part.name, label, "ran", estimate_s=estimate, remaining_s=remaining)
        if not self.budget.fits(estimate):
            record.decision = "not run"
            record.reason = (f"budget: estimated {estimate:.0f} s > {remaining:.0f} s left "
                             f"- {self.budget.margin_s:.0f} s margin")
            self.records.append(record)
            return None
        self.records.append(record)
        self.current = (cell, record, time.perf_counter())
        return max(remaining - self.budget.margin_s / 2, 1.0)


def _failed_errors(run_dir: Path) -> dict[str, str]:
    """Error text of every failed cell already in the run folder."""
    from nrg.sweep.store import RunStore

    store = RunStore.at(run_dir)
    out: dict[str, str] = {}
    for cell_id, status in store.finished().items():
        if status != "ok":
            import pandas as pd

            rows = pd.read_parquet(store.cell_path(cell_id), columns=["error"])
            out[cell_id] = str(rows["error"].dropna().iloc[0]) if rows["error"].notna().any() else ""
    return out


def _run_config(part: Part, config: dict[str, Any], run_dir: Path, estimator: Estimator, budget: Budget,
                records: list[CellRecord], progress: bool) -> None:
    from nrg.sweep.config import parse_config
    from nrg.sweep.run import run_sweep
    from nrg.sweep.store import RunStore

    cells = parse_config(config).cells()
    done = RunStore.at(run_dir).finished()
    for cell in cells:
        if done.get(cell.cell_id) == "ok":
            records.append(CellRecord(part.name, _cell_label(cell), "reused", "ok", reason="finished in an earlier run"))
    todo = [c for c in cells if done.get(c.cell_id) != "ok"]
    if not todo:
        return
    if not any(budget.fits(estimator.estimate(c).total_s) for c in todo):
        for c in todo:
            est = estimator.estimate(c).total_s
            records.append(CellRecord(part.name, _cell_label(c), "not run", estimate_s=est,
                                      remaining_s=budget.remaining_s(), reason="budget: no cell of this sweep fits"))
        return
    gate = _Gate(part, run_dir, estimator, budget, records, _failed_errors(run_dir))
    try:
        run_sweep(config, run_dir, progress=progress, retry_failed=True, gate=gate)
    except ParameterError as exc:
        records.append(CellRecord(part.name, config["name"], "not run", reason=f"refused before any work: {exc}"))
    finally:
        gate.finish()


def _run_meters(part: Part, out: Path, budget: Budget, records: list[CellRecord]) -> None:
    from nrg import reference_meters

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
    started = time.perf_counter()
    try:
        result = reference_meters.measure(part.meters, folder)
    except Exception as exc:  # noqa: BLE001 - a broken meter must not cost the other parts
        record.result, record.reason = "failed", f"{type(exc).__name__}: {exc}"
    else:
        record.result = "ok" if result["status"] == "measured" else "unsupported"
        record.reason = result.get("reason", "")
    record.actual_s = time.perf_counter() - started


def run(budget_s: float, out: str | Path, device: str = "cuda", margin_s: float | None = None,
        progress: bool = False) -> dict[str, Any]:
    """Measure what fits in ``budget_s`` seconds into ``out``; write and return the summary."""
    params = check(budget_s, out, device, margin_s)
    budget = Budget(params["budget_s"], params["margin_s"])
    out_dir: Path = params["out"]
    estimator = Estimator(device)
    records: list[CellRecord] = []
    planned = parts(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    for part in planned:
        records += [CellRecord(part.name, what, "not run", reason=f"not possible here: {why}")
                    for what, why in part.left_out]
        if part.meters is not None:
            _run_meters(part, out_dir, budget, records)
        for config in part.configs:
            _run_config(part, config, out_dir / part.chapter, estimator, budget, records, progress)
    return write_summary(out_dir, params, budget, estimator, planned, records)


def write_summary(out_dir: Path, params: dict[str, Any], budget: Budget, estimator: Estimator,
                  planned: list[Part], records: list[CellRecord]) -> dict[str, Any]:
    """``summary.json`` and ``summary.md``: what ran, what was reused, what did not and why."""
    from nrg.hardware import provenance

    summary = {
        "device": params["device"], "budget_s": params["budget_s"], "margin_s": params["margin_s"],
        "elapsed_s": budget.elapsed_s(), "settings_changed": "none: clocks, power limit and cpufreq observed only",
        "parts": [{"name": p.name, "chapter": p.chapter, "what": p.what} for p in planned],
        "cells": [asdict(r) for r in records], "estimator": estimator.to_dict(), "provenance": provenance(),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out_dir / "summary.md").write_text(summary_text(summary))
    return summary


def summary_text(summary: dict[str, Any]) -> str:
    """The summary as Markdown: counts per part, then every cell that did not run and why."""
    lines = [f"# nrg reference on {summary['device']}: {summary['elapsed_s']:.0f} s of "
             f"{summary['budget_s']:.0f} s (margin {summary['margin_s']:.0f} s)", "",
             f"Settings changed: {summary['settings_changed']}.", ""]
    for part in summary["parts"]:
        cells = [c for c in summary["cells"] if c["part"] == part["name"]]
        counts: dict[str, int] = {}
        for c in cells:
            key = c["decision"] + (f" ({c['result']})" if c["result"] else "")
            counts[key] = counts.get(key, 0) + 1
        listed = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing planned"
        lines.append(f"- **{part['chapter']}** ({part['what']}): {listed}")
    missing = [c for c in summary["cells"] if c["decision"] == "not run" or c["result"] in ("failed", "killed")]
    if missing:
        lines += ["", "Not measured, and why:", ""]
        lines += [f"- {c['part']}: {c['name']}: {c['reason']}" for c in missing]
    return "\n".join(lines) + "\n"


def archive(out_dir: str | Path, path: str | Path, limit_bytes: int = ARCHIVE_LIMIT_BYTES) -> dict[str, Any]:
    """Pack ``out_dir`` into one ``.tar.gz`` of at most ``limit_bytes``; cell logs go first if it is too big."""
    import tarfile

    source, target = Path(out_dir), Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    for keep_logs in (True, False):
        with tarfile.open(tmp, "w:gz") as tar:
            for item in sorted(source.rglob("*")):
                if item.is_file() and (keep_logs or "logs" not in item.relative_to(source).parts):
                    tar.add(item, arcname=str(Path(source.name) / item.relative_to(source)))
        size = tmp.stat().st_size
        if size <= limit_bytes:
            tmp.replace(target)
            return {"path": str(target), "bytes": size, "logs": keep_logs}
    tmp.unlink(missing_ok=True)
    raise ParameterError(f"the archive of {source} would be {size / 2**20:.1f} MiB even without logs, over "
                         f"the {limit_bytes / 2**20:.0f} MiB limit; copy the folder instead")
