"""Ranking compressed configurations by energy and quality; the Pareto front.

The ranking follows the Energy-Aware LLMs paper: R = w·φ + (1−w)·ρ, where

* φ (energy efficiency) = (E_max − E) / (E_max − E_min): the least energy
  among the compared configurations scores 1, the most scores 0;
* ρ (task performance) = (Q − Q_min) / (Q_max − Q_min): the best quality
  scores 1, the worst 0;
* w ∈ [0, 1] weighs energy against quality (w = 1: energy only).

Both are min–max normalised *across the configurations compared*, so R ranks
within one table and is not comparable between tables. When all
configurations have the same energy (or quality), that term is 1.0 for every
one of them: nothing separates them on it, and a note says so.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nrg.errors import ParameterError
from nrg.stats._data import as_list, ok_rows, require_columns


def _minmax(values: np.ndarray, higher_is_better: bool) -> tuple[np.ndarray, bool]:
    """Min–max scale to [0, 1]; (all ones, True) when every value is equal."""
    v = np.asarray(values, dtype=float)
    lo, hi = np.nanmin(v), np.nanmax(v)
    if hi - lo <= 1e-12 * max(abs(hi), abs(lo), 1e-300):
        return np.ones_like(v), True
    scaled = (v - lo) / (hi - lo)
    return (scaled if higher_is_better else 1 - scaled), False


def efficiency_score(energy: Sequence[float] | np.ndarray) -> np.ndarray:
    """φ = (E_max − E) / (E_max − E_min); all 1.0 when every energy is equal."""
    return _minmax(np.asarray(energy, dtype=float), higher_is_better=False)[0]


def performance_score(quality: Sequence[float] | np.ndarray) -> np.ndarray:
    """ρ = (Q − Q_min) / (Q_max − Q_min); all 1.0 when every quality is equal."""
    return _minmax(np.asarray(quality, dtype=float), higher_is_better=True)[0]


def check_weight(w: float) -> None:
    """``w`` must be a number in [0, 1]."""
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 1:
        raise ParameterError(f"w={w!r} is not valid; it must be a number in [0, 1] (1 = energy only)")


def ranking_score(phi: np.ndarray, rho: np.ndarray, w: float) -> np.ndarray:
    """R = w·φ + (1−w)·ρ."""
    check_weight(w)
    return w * np.asarray(phi, dtype=float) + (1 - w) * np.asarray(rho, dtype=float)


@dataclass(frozen=True, eq=False)
class RankResult:
    """Configurations with mean energy and quality, φ, ρ, R, rank and Pareto flag."""

    table: pd.DataFrame
    w: float
    by: tuple[str, ...]
    energy: str
    quality: str
    notes: tuple[str, ...] = ()
    energy_estimated: bool = False   # the energy is an estimate (CPU time × a rated power), not a measurement

    def to_frame(self) -> pd.DataFrame:
        """A copy of the ranking table, safe to modify."""
        return self.table.copy()

    @property
    def best(self) -> pd.Series:
        """The top-ranked configuration."""
        return self.table.iloc[0]

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        what = " (φ from <b>estimated</b> energy: a latency ranking times an assumed power)" \
            if self.energy_estimated else ""
        head = f"<p>Ranking R = w·φ + (1−w)·ρ with w = {self.w:g}{what}</p>"
        return head + str(self.table.to_html(index=False)) + (f"<ul>{notes}</ul>" if notes else "")


def rank_configs(
    df: pd.DataFrame,
    by: str | Sequence[str] = ("quant", "prune_method"),
    energy: str = "energy_j",
    quality: str = "score",
    w: float = 0.5,
    metric: str | None = None,
    replicate: str | None = None,
) -> RankResult:
    """Rank configurations by R (highest first) from their mean energy and quality.

    ``metric`` picks one metric when quality is in long form (``metric`` /
    ``score`` columns). Energy and quality are averaged separately, so they may
    come from different rows (energy per phase, quality once per cell).
    ``replicate`` names the column of independent quality replicates (e.g.
    ``train_repeat``: one fine-tuned model each, evaluated in several energy
    windows); the 95 % t interval of quality (``quality_ci_low`` /
    ``quality_ci_high``, NaN from one replicate) is taken over them, else over rows.
    """
    check_weight(w)
    by_cols = as_list(by)
    require_columns(df, [*by_cols, energy, quality], "by/energy/quality")
    data = ok_rows(df)
    if metric is not None:
        require_columns(df, ["metric"], "metric")
        data = data[data["metric"] == metric]
        if data.empty:
            raise ParameterError(f"metric={metric!r} is not in the data; metrics: {sorted(df['metric'].dropna().unique())}")
    key = data[by_cols].astype("string").fillna("none")
    grouped = data.assign(**{c: key[c] for c in by_cols}).groupby(by_cols, observed=True, sort=True)
    table = grouped.agg(energy_mean=(energy, "mean"), quality_mean=(quality, "mean"),
                        n=(energy, "count")).reset_index()
    table = table.merge(_quality_interval(data.assign(**{c: key[c] for c in by_cols}), by_cols, quality, replicate),
                        on=by_cols, how="left")
    notes = []
    missing = table[["energy_mean", "quality_mean"]].isna().any(axis=1)
    if missing.any():
        notes.append(f"{int(missing.sum())} configuration(s) without both energy and quality were not ranked.")
        table = table[~missing].reset_index(drop=True)
    if table.empty:
        raise ParameterError("no configuration has both an energy and a quality value to rank")
    phi, e_equal = _minmax(table["energy_mean"].to_numpy(), higher_is_better=False)
    rho, q_equal = _minmax(table["quality_mean"].to_numpy(), higher_is_better=True)
    if e_equal:
        notes.append("All configurations use the same energy: φ = 1.0 for every one.")
    if q_equal:
        notes.append("All configurations have the same quality: ρ = 1.0 for every one.")
    table["phi"], table["rho"] = phi, rho
    table["R"] = ranking_score(phi, rho, w)
    table["pareto"] = pareto_mask(table["energy_mean"], table["quality_mean"])
    table = table.sort_values(["R", "energy_mean"], ascending=[False, True], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    from nrg.stats._data import estimated

    return RankResult(table, float(w), tuple(by_cols), energy, quality, tuple(notes), estimated(data))


def _quality_interval(data: pd.DataFrame, by: list[str], quality: str, replicate: str | None) -> pd.DataFrame:
    """Per configuration: the number of quality replicates and the 95 % t interval of their mean."""
    from scipy import stats as sps

    if replicate is not None:
        require_columns(data, [replicate], "replicate")
        data = data.groupby([*by, replicate], observed=True)[quality].mean().reset_index()
    rows = []
    for key, part in data.groupby(by, observed=True, sort=True):
        values = part[quality].dropna().to_numpy(dtype=float)
        low = high = float("nan")
        if len(values) >= 2:
            mean, half = values.mean(), sps.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
            low, high = float(mean - half), float(mean + half)
        rows.append((*(key if isinstance(key, tuple) else (key,)), len(values), low, high))
    return pd.DataFrame(rows, columns=[*by, "quality_n", "quality_ci_low", "quality_ci_high"])


def pareto_mask(energy: Sequence[float] | pd.Series, quality: Sequence[float] | pd.Series) -> np.ndarray:
    """True for points no other point beats: none has ≤ energy and ≥ quality with one strict.

    Minimise energy, maximise quality. Points with a missing value are never on
    the front; exact duplicates of a front point are both on it.
    """
    e = np.asarray(energy, dtype=float)
    q = np.asarray(quality, dtype=float)
    if e.shape != q.shape:
        raise ParameterError(f"energy and quality must have the same length ({e.size} vs {q.size})")
    valid = np.isfinite(e) & np.isfinite(q)
    mask: np.ndarray = valid.copy()
    for i in np.flatnonzero(valid):
        better_or_equal = (e[valid] <= e[i]) & (q[valid] >= q[i])
        strictly = (e[valid] < e[i]) | (q[valid] > q[i])
        if np.any(better_or_equal & strictly):
            mask[i] = False
    return mask


def pareto_front(df: pd.DataFrame, energy: str = "energy_j", quality: str = "score") -> pd.DataFrame:
    """The rows on the energy–quality Pareto front, sorted by energy (ascending)."""
    require_columns(df, [energy, quality], "energy/quality")
    mask = pareto_mask(df[energy], df[quality])
    return df[mask].sort_values([energy, quality], ascending=[True, False], kind="stable")
