"""Frequency scaling (DVFS): energy, delay and their products per clock.

A lower clock draws less power but runs longer; energy (E), the energy-delay
product (EDP = E·t) and ED²P (E·t²) weigh that trade-off differently, so each
has its own optimal clock. Savings are stated against a reference clock: the
driver's default setting when the sweep measured it, else the highest clock.
"""
from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from typing import cast

import numpy as np
import pandas as pd
from scipy import stats as sps

from nrg.errors import ParameterError, check_choice
from nrg.stats._data import as_list, ok_rows, require_columns
from nrg.stats.summary import summarize

OBJECTIVES = {"energy": "energy_j", "edp": "edp_j_s", "ed2p": "ed2p_j_s2", "time": "time_s"}
DEFAULT_LABELS = ("default", "none", "")
PROFILE_MEASURES = ("energy_j", "time_s", "avg_power_w", "edp_j_s", "ed2p_j_s2")


def add_edp(df: pd.DataFrame, energy: str = "energy_j", time: str = "time_s") -> pd.DataFrame:
    """A copy with ``edp_j_s`` = E·t and ``ed2p_j_s2`` = E·t², per row (so they get CIs)."""
    require_columns(df, [energy, time], "energy/time")
    e = pd.to_numeric(df[energy], errors="coerce")
    t = pd.to_numeric(df[time], errors="coerce")
    return df.assign(edp_j_s=e * t, ed2p_j_s2=e * t**2)


def _check_phases(df: pd.DataFrame, by: list[str]) -> None:
    if "phase" in df.columns and "phase" not in by and ok_rows(df)["phase"].nunique() > 1:
        phases = sorted(map(str, ok_rows(df)["phase"].dropna().unique()))
        raise ParameterError(f"by={by!r}: the data mixes phases {phases}; add 'phase' to by or filter one phase")


def clock_key(values: pd.Series) -> pd.Series:
    """Clock as a number; the default (unlocked) setting — NaN or "default" — is NaN."""
    return pd.to_numeric(values.where(~values.astype("string").str.lower().isin(DEFAULT_LABELS)),
                         errors="coerce")


def clock_profile(
    df: pd.DataFrame,
    by: str | Sequence[str] = ("model",),
    clock: str = "gpu_clock_mhz",
    measures: Sequence[str] = PROFILE_MEASURES,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean and t CI of energy, time, power, EDP and ED²P per group per clock (long form)."""
    by_cols = as_list(by)
    require_columns(df, [clock, *by_cols], "clock/by")
    _check_phases(df, by_cols)
    data = add_edp(df) if {"energy_j", "time_s"} <= set(df.columns) else df
    present = [m for m in measures if m in data.columns]
    if not present:
        raise ParameterError(f"measures={list(measures)!r}: none of them is in the data")
    return summarize(data, [*by_cols, clock], present, confidence)


def _reference_rows(part: pd.DataFrame, keys: pd.Series, reference: str | float) -> tuple[pd.DataFrame, str]:
    if reference == "auto":
        reference = "default" if keys.isna().any() else "max"
    if reference == "default":
        if not keys.isna().any():
            raise ParameterError("reference='default': no row has the default clock; use 'max' or a clock in MHz")
        return part[keys.isna()], "default"
    if reference == "max":
        top = keys.max()
        return part[keys == top], _fmt(top)
    value = float(reference)  # a clock in MHz, checked by the caller
    return part[keys == value], _fmt(value)


def _fmt(mhz: float) -> str:
    return str(int(mhz)) if float(mhz).is_integer() else str(mhz)


def _check_reference(reference: object, keys: pd.Series) -> None:
    if reference in ("auto", "max", "default"):
        return
    clocks = sorted(keys.dropna().unique())
    if isinstance(reference, bool) or not isinstance(reference, (int, float)) or float(reference) not in clocks:
        raise ParameterError(f"reference={reference!r} is not valid; choose 'auto', 'max', 'default' or one "
                             f"of the measured clocks: {[_fmt(c) for c in clocks]}")


def optimal_clocks(
    df: pd.DataFrame,
    by: str | Sequence[str] = ("model",),
    clock: str = "gpu_clock_mhz",
    objective: str = "energy",
    reference: str | float = "auto",
    energy: str = "energy_j",
    time: str = "time_s",
) -> pd.DataFrame:
    """Per group: the locked clock minimising the mean of ``objective``, and what it costs.

    ``objective`` is "energy", "edp", "ed2p" or "time"; ``reference`` is "auto"
    (the default clock if measured, else the highest), "max", "default" or a
    clock in MHz. ``optimal_clock_mhz`` is the best *locked* clock;
    ``default_best`` is True when the default (unlocked) setting was measured
    and its mean ``objective`` is lower than every locked clock's: then no lock
    is worth setting, and ``best_setting`` reads "default" (else the clock).
    ``energy_saving`` is the fraction of energy the best locked clock saves vs
    the reference (negative = more energy), ``latency_change`` the fractional
    change in time (positive = slower); ``p_energy`` is Welch's t-test of the
    two clocks' energies. ``energy_default_j``, ``time_default_s`` and
    ``metric_default`` are the default setting's means (NaN when not measured).
    """
    check_choice("objective", objective, list(OBJECTIVES))
    by_cols = as_list(by)
    require_columns(df, [clock, energy, time, *by_cols], "clock/energy/time/by")
    _check_phases(df, by_cols)
    data = add_edp(ok_rows(df), energy, time)
    data = data.assign(_clock=clock_key(data[clock]))
    _check_reference(reference, data["_clock"])
    metric = {"energy": energy, "time": time}.get(objective, OBJECTIVES[objective])
    groups = data.groupby(by_cols, observed=True, sort=True) if by_cols else [((), data)]
    rows = [_optimal_row(key, part, by_cols, metric, reference, energy, time) for key, part in groups]
    return pd.DataFrame([r for r in rows if r is not None])


def _optimal_row(key: Hashable, part: pd.DataFrame, by_cols: list[str], metric: str, reference: str | float,
                 energy: str, time: str) -> dict | None:
    key = key if isinstance(key, tuple) else (key,)
    locked = part[part["_clock"].notna()]
    if locked.empty:
        return None
    means = locked.groupby("_clock")[list(dict.fromkeys([metric, energy, time]))].mean()
    best = float(cast(float, means[metric].idxmin()))   # the index is ``_clock``: clock numbers
    ref_rows, ref_label = _reference_rows(part, part["_clock"], reference)
    best_rows = locked[locked["_clock"] == best]
    e_opt, e_ref = best_rows[energy].mean(), ref_rows[energy].mean()
    t_opt, t_ref = best_rows[time].mean(), ref_rows[time].mean()
    p_energy = np.nan
    if len(best_rows) > 1 and len(ref_rows) > 1 and ref_label != _fmt(best):
        p_energy = _welch_p(best_rows[energy], ref_rows[energy])
    default_rows = part[part["_clock"].isna()]
    metric_default = default_rows[metric].mean() if len(default_rows) else np.nan
    default_best = bool(np.isfinite(metric_default) and metric_default < means[metric].min())
    return {**dict(zip(by_cols, key, strict=True)), "objective": metric, "optimal_clock_mhz": best,
            "best_setting": "default" if default_best else _fmt(best), "default_best": default_best,
            "reference_clock": ref_label, "metric_opt": best_rows[metric].mean(),
            "metric_ref": ref_rows[metric].mean(), "metric_default": metric_default,
            "energy_opt_j": e_opt, "energy_ref_j": e_ref, "energy_default_j": default_rows[energy].mean(),
            "time_opt_s": t_opt, "time_ref_s": t_ref, "time_default_s": default_rows[time].mean(),
            "energy_saving": 1 - e_opt / e_ref, "latency_change": t_opt / t_ref - 1, "p_energy": p_energy,
            "n_clocks": len(means)}


def _welch_p(a: pd.Series, b: pd.Series) -> float:
    """Welch's t-test p-value; NaN when neither group varies (no noise to test against)."""
    if a.std() == 0 and b.std() == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-identical repeats: precision note only
        return float(sps.ttest_ind(a, b, equal_var=False).pvalue)
