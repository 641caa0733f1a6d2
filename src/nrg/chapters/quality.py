"""How far a chapter's numbers can be trusted: cells that missed their CI target, flagged repeats.

A sweep repeats each cell until the 95% confidence interval of its energy per
token is within ``ci_rel`` of the mean, or until ``repeats.max``; on a busy
machine many cells stop at the cap with a wider interval. A reader must see
which ones, and how wide they stayed. Each repeat also records how much CPU
time other processes used (and foreign GPU processes); a repeat above the
sweep's threshold is flagged in ``interference`` (see
:mod:`nrg.sweep.interference`). Every chapter shows both with :func:`show`.

Works on any rows with ``cell_id`` and ``ci_rel_halfwidth`` (sweeps, the
fine-tuning study): the target comes from the ``ci_rel_target`` column the
sweep writes, or from ``target`` where the rows have none.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from nrg.errors import ParameterError

#: Columns that name a cell, shown when present (extra sweep axes are added from nrg.axes).
FACTORS: tuple[str, ...] = ("model", "weights", "dtype", "task", "quant", "prune", "batch_size",
                            "input_tokens", "output_tokens")


def _factors(rows: Any) -> list[str]:
    from nrg import axes

    names = [*FACTORS, *sorted(axes.registered())]
    return [c for c in dict.fromkeys(names) if c in rows.columns and rows[c].notna().any()]


def _ok(rows: Any) -> Any:
    return rows[rows["status"] == "ok"] if "status" in rows.columns else rows


def missed_ci(rows: Any, target: float | None = None) -> Any:
    """One row per cell (per phase where phases have their own interval) whose CI stayed wider than its target.

    Columns: the cell's factors, ``repeats_n``, ``ci_rel_halfwidth`` (reached;
    ``inf`` when fewer than two repeats counted), ``ci_rel_target``. ``target``
    overrides the rows' ``ci_rel_target``; cells with no target (a fixed repeat
    count) are never listed.
    """
    import pandas as pd

    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))
                               or not 0 < target < 1):
        raise ParameterError(f"target={target!r} is not valid; give a relative half-width in (0, 1)")
    ok = _ok(rows)
    if target is None and "ci_rel_target" not in ok.columns:
        raise ParameterError("these rows carry no ci_rel_target column; pass target= (e.g. 0.05)")
    keys = ["cell_id"]
    if "phase" in ok.columns and ok.groupby("cell_id")["ci_rel_halfwidth"].nunique(dropna=False).gt(1).any():
        keys.append("phase")    # e.g. the fine-tuning study: one interval per phase
    cells = ok.drop_duplicates(keys).copy()
    cells["ci_rel_target"] = float(target) if target is not None else cells["ci_rel_target"]
    missed = cells[cells["ci_rel_target"].notna()
                   & ~(cells["ci_rel_halfwidth"] <= cells["ci_rel_target"])]   # NaN or inf: missed
    columns = [*_factors(ok), *keys[1:], "repeats_n", "ci_rel_halfwidth", "ci_rel_target"]
    out = missed[[c for c in columns if c in missed.columns]]
    return pd.DataFrame(out).sort_values("ci_rel_halfwidth", ascending=False).reset_index(drop=True)


def interference_count(rows: Any) -> int:
    """How many measured repeats were flagged for interference (0 when the rows do not record it)."""
    ok = _ok(rows)
    if "interference" not in ok.columns:
        return 0
    flagged = ok[ok["interference"].fillna(False).astype(bool)]
    keys = [c for c in ("cell_id", "repeat") if c in flagged.columns]
    return int(len(flagged.drop_duplicates(keys))) if keys else int(len(flagged))


def run_order(rows: Any) -> str:
    """One sentence on the order the repeats ran in: blocked (how many blocks) or sequential."""
    ok = _ok(rows)
    if "run_order" not in ok.columns or "block" not in ok.columns or ok.empty:
        return "The rows do not record their run order."
    blocked = ok[ok["run_order"].notna()]
    if len(blocked) == len(ok):
        sessions = blocked.drop_duplicates(["run_id", "block"]) if "run_id" in ok.columns else blocked
        return (f"Repeats ran in {len(sessions)} blocks (each a pass over the unfinished cells of a sweep, in a "
                "seeded random order; columns `block`, `run_order`), so drift in background load is spread over "
                "the cells; the ANOVAs take the block as a factor wherever a block holds every level they compare.")
    if blocked.empty:
        return ("Cells ran one after another, each with all its repeats (`order: sequential`): drift in "
                "background load can line up with the factors.")
    return (f"{len(blocked)} of {len(ok)} rows ran in blocked random order, the others one cell after another "
            "(`order: sequential`).")


def summary(rows: Any, target: float | None = None) -> str:
    """Three sentences for the page: cells that missed the CI target, flagged repeats, run order."""
    first = _precision_and_interference(rows, target)
    return first if first.startswith("No successful cells") else f"{first} {run_order(rows)}"


def _precision_and_interference(rows: Any, target: float | None) -> str:
    ok = _ok(rows)
    n_cells = int(ok["cell_id"].nunique()) if "cell_id" in ok.columns else 0
    if n_cells == 0:
        return "No successful cells: there is no interval or interference to report."
    if target is None and "ci_rel_target" not in ok.columns:
        ci = "These rows record no CI target, so no cell can be said to have missed it."
    else:
        missed = missed_ci(ok, target)
        ci = f"{len(missed)} of {n_cells} cells missed their 95% CI target"
        if len(missed):
            worst = float(missed["ci_rel_halfwidth"].max())
            ci += (f" (widest: ±{worst:.0%} of the mean; listed below)." if math.isfinite(worst)
                   else " (some with fewer than two counted repeats, so no interval; listed below).")
        else:
            ci += "."
    if "interference" not in ok.columns:
        return ci + " Interference was not recorded for these rows."
    keys = [c for c in ("cell_id", "repeat") if c in ok.columns]
    n_repeats = len(ok.drop_duplicates(keys))
    flagged = interference_count(ok)
    return (ci + f" {flagged} of {n_repeats} measured repeats were flagged for interference "
            "(other processes used more than the sweep's share of the CPUs, or held the GPU); "
            "their rows are kept and marked in the `interference` column.")


def show(rows: Any, target: float | None = None) -> None:
    """Display :func:`summary` and the :func:`missed_ci` table; rows, None, or {label: rows}."""
    from IPython.display import Markdown, display

    runs = dict(rows) if isinstance(rows, Mapping) else {"": rows}
    runs = {label: r for label, r in runs.items() if r is not None and len(r)}
    if not runs:
        display(Markdown("*No measured rows: no interval or interference to report.*"))
    for label, frame in runs.items():
        text = summary(frame, target)
        display(Markdown(f"**{label}**: {text}" if label else text))
        if target is not None or "ci_rel_target" in frame.columns:
            table = missed_ci(_ok(frame), target)
            if len(table):
                display(table)
