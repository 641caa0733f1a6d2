"""How much a chapter's energy says beyond its time: the first thing a reader of estimated joules needs.

Why: where no counter exists, energy is wall time (or CPU time) times a rated
power, plus a constant DRAM term. Its power is then almost the same in every
cell, energy and time correlate at 0.99+, and every energy ranking, ANOVA or
per-token fit is a latency result in joules. :func:`energy_beyond_time`
measures that on the rows (corr(energy, time) over the windows, the spread of
the implied power energy/time), and :func:`energy_lead` turns it into the
opening sentences of a chapter's findings box.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: corr(energy, time) above this and implied-power spread (CV) below the next: energy is time × a constant.
TIME_CORR = 0.98
POWER_CV = 0.05


@dataclass(frozen=True)
class EnergyVsTime:
    """corr(energy, time) over the windows, the implied power's mean and spread, and the energy method."""

    n: int
    corr: float
    power_mean_w: float
    power_min_w: float
    power_max_w: float
    power_cv: float
    estimated_share: float

    @property
    def only_time(self) -> bool:
        """Energy carries (almost) nothing beyond time: estimated, and time × a near-constant power."""
        return (self.estimated_share > 0 and math.isfinite(self.corr) and self.corr >= TIME_CORR
                and math.isfinite(self.power_cv) and self.power_cv <= POWER_CV)


def energy_beyond_time(rows: pd.DataFrame, energy: str = "energy_j", time: str = "time_s") -> EnergyVsTime | None:
    """corr(energy, time) and the implied power's spread over ``rows`` (ok rows with both); None when < 3."""
    data = rows
    if "status" in data.columns:
        data = data[data["status"].astype("string").fillna("ok") == "ok"]
    if energy not in data.columns or time not in data.columns:
        return None
    e = pd.to_numeric(data[energy], errors="coerce").to_numpy(dtype=float)
    t = pd.to_numeric(data[time], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(e) & np.isfinite(t) & (t > 0)
    if keep.sum() < 3:
        return None
    e, t = e[keep], t[keep]
    corr = float(np.corrcoef(e, t)[0, 1]) if np.std(e) > 0 and np.std(t) > 0 else math.nan
    power = e / t
    cv = float(np.std(power, ddof=1) / np.mean(power)) if np.mean(power) > 0 else math.nan
    methods = data.loc[keep, "energy_method"].astype("string") if "energy_method" in data.columns else None
    share = float((methods == "estimated").mean()) if methods is not None else 0.0
    return EnergyVsTime(int(keep.sum()), corr, float(power.mean()), float(power.min()), float(power.max()),
                        cv, share)


def energy_lead(rows: pd.DataFrame, energy: str = "energy_j", time: str = "time_s") -> list[str]:
    """The box's opening on estimated energy: how much it carries beyond time, in plain words.

    Nothing when no row's energy is estimated (a counter measured it).
    """
    found = energy_beyond_time(rows, energy, time)
    if found is None or found.estimated_share == 0:
        return []
    share = "all" if found.estimated_share == 1 else f"{found.estimated_share:.0%}"
    low, high = f"{found.power_min_w:.3g}", f"{found.power_max_w:.3g}"
    power = f"{low}–{high} W" if low != high else f"{low} W"
    corr = f"{found.corr:.3f}" if math.isfinite(found.corr) else "not defined (no variation)"
    text = (f"**Energy here is estimated, not measured** ({share} of the {found.n} windows): without an energy "
            "counter the joules are computed from time and a rated power (CPU time × power per core, plus a "
            "fixed memory term). Across the "
            f"windows corr(energy, time) = {corr} and the implied power (energy ÷ time) is {power} "
            f"(spread {found.power_cv:.1%} of its mean).")
    if found.only_time:
        return [text, "So on this machine **every energy comparison in this chapter is a latency comparison "
                      "times an assumed power**: rankings, ANOVAs and per-token fits of energy say nothing "
                      "that time does not; read them as time, and the joules as an estimate."]
    return [text + " What energy adds to time here is that spread of the implied power: how busy the work kept "
                   "the cores (CPU time ÷ wall time) times an assumed power per core -- an estimate's assumption, "
                   "not a measurement."]
