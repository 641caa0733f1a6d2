"""Tukey HSD between the levels of one factor, using the fitted model's error.

statsmodels' ``pairwise_tukeyhsd`` is a one-way test: in a model × task
design it would count the task's variance as noise and miss clear task
effects. Like R's ``TukeyHSD(aov(...))``, this uses the model's residual mean
square and residual df (Tukey–Kramer for unequal group sizes); with one factor
it equals ``pairwise_tukeyhsd``. Simple effects apply the same test to the
levels of one factor within each level (or combination of levels) of others.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import studentized_range

TUKEY_COLUMNS = ("group1", "group2", "meandiff", "p_adj", "ci_low", "ci_high", "reject")


def tukey_kramer(y: pd.Series, groups: pd.Series, ms_res: float, df_res: float,
                 alpha: float = 0.05) -> pd.DataFrame:
    """All pairwise differences of group means (group2 − group1) with simultaneous CIs."""
    stats = pd.DataFrame({"y": y.to_numpy(dtype=float), "g": groups.astype(str).to_numpy()})
    order = [str(v) for v in pd.unique(groups.astype(str))]
    if isinstance(groups.dtype, pd.CategoricalDtype):
        order = [str(c) for c in groups.cat.categories if str(c) in set(order)]
    agg = stats.groupby("g")["y"].agg(["mean", "count"]).loc[order]
    mean, count = agg["mean"].astype(float), agg["count"].astype(int)
    k = len(order)
    q_crit = float(studentized_range.ppf(1 - alpha, k, df_res))
    rows = []
    for a, b in itertools.combinations(order, 2):
        diff = mean[b] - mean[a]
        se = np.sqrt(ms_res / 2 * (1 / count[a] + 1 / count[b]))
        q = abs(diff) / se if se > 0 else np.inf
        p = float(studentized_range.sf(q, k, df_res)) if np.isfinite(q) else 0.0
        half = q_crit * se
        rows.append((a, b, diff, min(max(p, 0.0), 1.0), diff - half, diff + half, bool(p < alpha)))
    return pd.DataFrame(rows, columns=list(TUKEY_COLUMNS))


def simple_effect_table(data: pd.DataFrame, response: str, factor: str, within: Sequence[str],
                        ms_res: float, df_res: float, alpha: float = 0.05) -> pd.DataFrame:
    """Tukey–Kramer between ``factor``'s levels inside each combination of ``within`` levels.

    Each combination is its own family (its pairs are adjusted together, as
    emmeans' ``pairs(..., by=)`` does); the error is the fitted model's, so a
    cell with few repeats borrows the pooled residual variance.
    """
    within = list(within)
    frames = []
    for key, part in data.groupby(within, observed=True, sort=True):
        if part[factor].nunique() < 2:
            continue
        table = tukey_kramer(part[response], part[factor], ms_res, df_res, alpha)
        key = key if isinstance(key, tuple) else (key,)
        for column, value in reversed(list(zip(within, key, strict=True))):
            table.insert(0, column, str(value))
        frames.append(table)
    if not frames:
        return pd.DataFrame(columns=[*within, *TUKEY_COLUMNS])
    return pd.concat(frames, ignore_index=True)
