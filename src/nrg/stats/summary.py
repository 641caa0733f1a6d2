"""Per-group mean, spread and a t confidence interval of any measure.

The book shows a mean with its 95% interval wherever it shows a number; the
interval uses Student's t because a cell has few repeats (often 3–10), where
the normal approximation is too narrow.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as sps

from nrg.stats._data import as_list, check_confidence, ok_rows, require_columns

SUMMARY_COLUMNS = ("measure", "mean", "std", "n", "sem", "ci_low", "ci_high", "ci_halfwidth")


def t_halfwidth(std: npt.ArrayLike, n: npt.ArrayLike, confidence: float = 0.95) -> np.ndarray:
    """Half-width of the two-sided t interval of a mean; NaN where n < 2."""
    n_arr = np.asarray(n, dtype=float)
    std_arr = np.asarray(std, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = np.where(n_arr >= 2, n_arr - 1, np.nan)
        t = sps.t.ppf(0.5 + confidence / 2, dof)
        return np.where(n_arr >= 2, t * std_arr / np.sqrt(n_arr), np.nan)


def summarize(
    df: pd.DataFrame,
    by: str | Sequence[str] | None,
    measures: str | Sequence[str],
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean, std, n and the t interval of each measure per group, in long form.

    One row per group per measure (columns ``*by, measure, mean, std, n, sem,
    ci_low, ci_high, ci_halfwidth``) so the same table feeds a bar chart, a
    findings sentence and a printed table. Rows whose status is not ``ok`` and
    missing values are left out; a group with one value gets a NaN interval.
    """
    check_confidence(confidence)
    by_cols, measure_cols = as_list(by), as_list(measures)
    require_columns(df, by_cols, "by")
    require_columns(df, measure_cols, "measures")
    data = ok_rows(df)
    frames = []
    for measure in measure_cols:
        values = pd.to_numeric(data[measure], errors="coerce")
        part = data[by_cols].assign(_value=values).dropna(subset=["_value"])
        if by_cols:
            grouped = part.groupby(by_cols, observed=True, sort=True, dropna=False)["_value"]
            stats = grouped.agg(["mean", "std", "count"]).reset_index()
        else:
            v = part["_value"]
            stats = pd.DataFrame({"mean": [v.mean()], "std": [v.std()], "count": [v.count()]})
        stats = stats.rename(columns={"count": "n"})
        stats.insert(len(by_cols), "measure", measure)
        frames.append(stats)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*by_cols, *SUMMARY_COLUMNS])
    out["n"] = out["n"].astype(int)
    out["sem"] = out["std"] / np.sqrt(out["n"].where(out["n"] > 0))
    out["ci_halfwidth"] = t_halfwidth(out["std"], out["n"], confidence)
    out["ci_low"] = out["mean"] - out["ci_halfwidth"]
    out["ci_high"] = out["mean"] + out["ci_halfwidth"]
    from nrg.stats._data import estimated

    out = out[[*by_cols, *SUMMARY_COLUMNS]]
    out.attrs["energy_estimated"] = estimated(data)   # pivots keep it: their energy headers say "estimated"
    return out
