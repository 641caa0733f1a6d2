"""Checks of the ANOVA's assumptions: normal residuals, equal variance per cell.

An F test on energy data often meets skewed residuals (a few slow repeats) and
variance that grows with the mean (big models vary more in joules than small
ones). The checks say so in words, so a reader knows when to trust the robust
table instead of the classical one.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

#: Shapiro–Wilk's p-value is unreliable beyond this many values (scipy warns).
SHAPIRO_MAX_N = 5000


@dataclass(frozen=True)
class AssumptionCheck:
    """One test of one assumption; ``passed`` is None when it could not be run."""

    name: str
    test: str
    statistic: float
    p: float
    passed: bool | None
    message: str


def _p_words(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def check_normality(residuals: np.ndarray, alpha: float = 0.05) -> AssumptionCheck:
    """Shapiro–Wilk for n ≤ 5000, D'Agostino's K² above; untestable below 3 (or 8)."""
    resid = np.asarray(residuals, dtype=float)
    resid = resid[np.isfinite(resid)]
    n = resid.size
    if n < 3 or np.ptp(resid) <= 1e-12 * max(1.0, float(np.max(np.abs(resid)))):
        why = "fewer than 3 residuals" if n < 3 else "the residuals are all equal"
        return AssumptionCheck("normality", "none", float("nan"), float("nan"), None,
                               f"Residual normality not tested: {why}.")
    if n <= SHAPIRO_MAX_N:
        test, (stat, p) = "Shapiro–Wilk", sps.shapiro(resid)
    else:
        test, (stat, p) = "D'Agostino K²", sps.normaltest(resid)
    passed = bool(p >= alpha)
    verdict = "consistent with normal" if passed else "not normal"
    message = f"Residuals {verdict} ({test} W = {stat:.3g}, {_p_words(p)}, n = {n})."
    if test != "Shapiro–Wilk":
        message = message.replace(" W =", " K² =")
    return AssumptionCheck("normality", test, float(stat), float(p), passed, message)


def check_homogeneity(
    response: pd.Series, data: pd.DataFrame, factors: Sequence[str], alpha: float = 0.05
) -> AssumptionCheck:
    """Levene's test (median-centred, i.e. Brown–Forsythe) across the factor cells.

    Cells with fewer than two values carry no variance and are left out; with
    fewer than two usable cells the test cannot run and says so.
    """
    groups = [g.to_numpy(dtype=float) for _, g in response.groupby([data[f] for f in factors], observed=True)]
    usable = [g for g in groups if g.size >= 2]
    if len(usable) < 2:
        return AssumptionCheck("homogeneity", "none", float("nan"), float("nan"), None,
                               "Equal variance not tested: fewer than two cells with 2+ observations.")
    if all(np.ptp(g) == 0 for g in usable):
        return AssumptionCheck("homogeneity", "none", float("nan"), float("nan"), None,
                               "Equal variance not tested: every cell has zero spread.")
    with np.errstate(divide="ignore", invalid="ignore"):
        stat, p = sps.levene(*usable, center="median")
    if not np.isfinite(stat):
        # e.g. two values per cell: both sit equally far from their median, so the
        # deviations have no spread within cells and the statistic is undefined.
        return AssumptionCheck("homogeneity", "none", float("nan"), float("nan"), None,
                               "Equal variance not tested: Levene's statistic is undefined here "
                               "(no spread of deviations within cells, e.g. two values per cell).")
    passed = bool(p >= alpha)
    verdict = "similar" if passed else "different"
    skipped = len(groups) - len(usable)
    extra = f"; {skipped} cell(s) with one value left out" if skipped else ""
    message = (f"Variances across {len(usable)} cells are {verdict} "
               f"(Levene W = {stat:.3g}, {_p_words(p)}{extra}).")
    return AssumptionCheck("homogeneity", "Levene (median)", float(stat), float(p), passed, message)
