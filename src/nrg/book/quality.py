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
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd

#: Columns that name a cell, shown when present (extra sweep axes are added from nrg.sweep.axes).
FACTORS: tuple[str, ...] = ("model", "weights", "dtype", "task", "quant", "prune", "batch_size",
                            "input_tokens", "output_tokens")


def _factors(rows: Any) -> list[str]:
    from nrg.sweep import axes

    names = [*FACTORS, *sorted(axes.registered())]
    return [c for c in dict.fromkeys(names) if c in rows.columns and rows[c].notna().any()]


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows that measured something, by the one rule every analysis uses (:func:`nrg.stats.ok_rows`).

    Imported here, not at the top: ``nrg.stats`` loads statsmodels, which a page that
    only lists its cells does not need.
    """
    from nrg.stats import ok_rows

    return ok_rows(rows)


def missed_ci(rows: Any, target: float | None = None) -> pd.DataFrame:
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


#: The sweeps' default threshold (nrg.sweep.interference): used for rows that recorded the share but no flag.
DEFAULT_MAX_OTHER_CPU_FRAC = 0.25
#: Phases whose rows are measured once per cell after its repeats (quality scoring), outside the run order.
ONCE_PER_CELL = ("inference",)


def flagged(rows: Any) -> pd.Series:
    """Whether each row was disturbed: its ``interference`` flag, else ``other_cpu_frac`` over the default.

    Why the fallback: rows written before fine-tuning windows were checked
    (``interference`` null) still record how much CPU others used; such a row
    is judged by the sweeps' default threshold rather than called clean.
    """
    import pandas as pd

    flag = rows["interference"] if "interference" in rows.columns else pd.Series(pd.NA, index=rows.index)
    flag = flag.astype("boolean")
    if "other_cpu_frac" in rows.columns:
        busy = pd.to_numeric(rows["other_cpu_frac"], errors="coerce") > DEFAULT_MAX_OTHER_CPU_FRAC
        flag = flag.fillna(busy.where(pd.to_numeric(rows["other_cpu_frac"], errors="coerce").notna()))
    return flag


def _records_interference(rows: Any) -> bool:
    return "interference" in rows.columns or "other_cpu_frac" in rows.columns


def interference_count(rows: Any) -> int:
    """How many measured repeats were flagged for interference (0 when the rows do not record it)."""
    ok = _ok(rows)
    if not _records_interference(ok):
        return 0
    hit = _windows(ok[flagged(ok).fillna(False).astype(bool)])
    keys = [c for c in ("cell_id", "_window", "repeat") if c in hit.columns]
    return len(hit.drop_duplicates(keys)) if keys else len(hit)


def _windows(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with ``_window``: one value per measured window (a generation's three phases share one)."""
    if "phase" not in rows.columns:
        return rows
    phase = rows["phase"].astype("string")
    return rows.assign(_window=phase.where(~phase.isin(["prefill", "decode", "generate"]), "generate"))


def _scored_once(ok: pd.DataFrame) -> pd.DataFrame:
    """Rows measured once per cell outside the repeats (quality scoring) in a frame whose repeats were blocked."""
    if "phase" not in ok.columns:
        return ok.iloc[:0]
    return ok[ok["phase"].isin(ONCE_PER_CELL) & ok["run_order"].isna()] if ok["run_order"].notna().any() \
        else ok.iloc[:0]


def run_order(rows: Any) -> str:
    """One sentence on the order the repeats ran in: blocked (how many blocks) or one cell after another.

    Quality-scoring rows (measured once per cell, after its repeats) are not
    part of the blocked order and are said to be so, not called "sequential".
    """
    ok = _ok(rows)
    if "run_order" not in ok.columns or "block" not in ok.columns or ok.empty:
        return "The rows do not record their run order."
    once = _scored_once(ok)
    repeats = ok.drop(index=once.index)
    blocked = repeats[repeats["run_order"].notna()]
    after = (f" Quality was scored once per cell after its repeats ({len(once)} row(s)), outside that order."
             if len(once) else "")
    if len(blocked) == len(repeats):
        sessions = blocked.drop_duplicates(["run_id", "block"]) if "run_id" in ok.columns else blocked
        return (f"Repeats ran in {len(sessions)} blocks (each a pass over the unfinished cells of a sweep, in a "
                "seeded random order; columns `block`, `run_order`), so drift in background load is spread over "
                "the cells; the ANOVAs take the block as a factor wherever a block holds every level they "
                "compare." + after)
    whole = ("Cells ran one after another, each with all its repeats (as the fine-tuning workload, a clock-"
             "setting sweep, the Ray executor and `order: sequential` do)")
    if blocked.empty:
        return whole + ": drift in background load can line up with the factors." + after
    return (f"{len(blocked)} of {len(repeats)} measured rows ran in blocked random order; in the others " +
            whole[0].lower() + whole[1:] + "." + after)


def disturbance(rows: Any, target: float | None = None) -> list[str]:
    """The box's sentences on precision and disturbance: missed CI targets and flagged repeats, always named."""
    text = _precision_and_interference(rows, target)
    return [text]


def summary(rows: Any, target: float | None = None) -> str:
    """Three sentences for the page: cells that missed the CI target, flagged repeats, run order."""
    first = _precision_and_interference(rows, target)
    return first if first.startswith("No successful cells") else f"{first} {run_order(rows)}"


def _precision_and_interference(rows: Any, target: float | None) -> str:
    ok = _ok(rows)
    n_cells = int(ok["cell_id"].nunique()) if "cell_id" in ok.columns else 0
    if n_cells == 0:
        return "No successful cells: there is no interval or interference to report."
    if target is None and ("ci_rel_target" not in ok.columns or ok["ci_rel_target"].isna().all()):
        ci = ("These rows record no CI target (a fixed number of repeats), so no cell can be said to have "
              "missed one.")
    else:
        missed = missed_ci(ok, target)
        ci = f"{len(missed)} of {n_cells} cells missed their 95% CI target"
        if len(missed):
            worst = float(missed["ci_rel_halfwidth"].max())
            ci += (f" (widest: ±{worst:.0%} of the mean; listed below)." if math.isfinite(worst)
                   else " (some with fewer than two counted repeats, so no interval; listed below).")
        else:
            ci += "."
    if not _records_interference(ok):
        return ci + " Interference was not recorded for these rows."
    windows = _windows(ok)
    keys = [c for c in ("cell_id", "_window", "repeat") if c in windows.columns]
    n_repeats = len(windows.drop_duplicates(keys))
    count = interference_count(ok)
    inferred = ""
    if "interference" not in ok.columns or ok["interference"].isna().any():
        inferred = (f" (rows without a flag are judged by their `other_cpu_frac` against the default "
                    f"{DEFAULT_MAX_OTHER_CPU_FRAC:.0%})")
    text = (f" {count} of {n_repeats} measured repeats were flagged for interference{inferred}: other processes "
            "used more than the sweep's share of the CPUs, or held the GPU.")
    if count and inferred and "interference" not in ok.columns:     # e.g. serving rows: the share only
        text += (" Their rows are kept; the `other_cpu_frac` column gives each one's share of other processes; "
                 "treat their numbers with caution.")
    elif count:
        text += " Their rows are kept and marked in the `interference` column; treat their numbers with caution."
    return ci + text


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
