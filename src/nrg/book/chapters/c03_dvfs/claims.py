"""The claims chapter 3 checks: a lower GPU clock saves energy (42 % on average) for a small latency cost (1-6 %).

Both at each model's energy-optimal lower clock against the default (else the
highest) clock, as ratios of means pooled over models
(:func:`nrg.book.claim_measures.pooled`); judged by :mod:`nrg.book.claims`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.claim_measures import Effect, Measured, pooled, ratio_of_means, signed, successful
from nrg.book.claims import MALIAKEL, MAX_WIDTH, Claim, Rule, reported
from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd


def _dvfs_effects(rows: pd.DataFrame, measure: str) -> dict[str, Effect]:
    """Per model: the energy saving (``energy_j``) or latency change (``time_s``) at its best lower clock.

    The clock is the energy-optimal locked one; the reference is the default
    (unlocked) setting when measured, else the highest locked clock.
    """
    from nrg.stats import clock_key

    gen = successful(rows)
    gen = gen[gen["phase"] == "generate"] if "phase" in gen.columns else gen
    if "gpu_clock_mhz" not in gen.columns:
        raise ParameterError("the rows have no gpu_clock_mhz column: no DVFS data")
    gen = gen.assign(_clock=clock_key(gen["gpu_clock_mhz"]))
    out = {}
    for model, part in gen.groupby("model", sort=True):
        locked, default = part[part["_clock"].notna()], part[part["_clock"].isna()]
        top = locked["_clock"].max()
        ref = default if len(default) else locked[locked["_clock"] == top]
        candidates = locked if len(default) else locked[locked["_clock"] < top]
        if candidates.empty or ref.empty:
            continue
        energy = candidates.groupby("_clock")["energy_j"].mean()
        best = float(energy.index[int(energy.argmin())])   # the clock (MHz) of the least mean energy (NaN skipped)
        ratio, variance, df = ratio_of_means(candidates.loc[candidates["_clock"] == best, measure], ref[measure])
        against = "default" if len(default) else f"{top:g} MHz"
        change = 1 - ratio if measure == "energy_j" else ratio - 1
        out[str(model)] = Effect(f"{best:g} MHz vs {against}", change, variance, df)
    if not out:
        raise ParameterError("only one GPU setting was measured (no lower locked clock to compare with)")
    return out


def _dvfs_measured(rows: pd.DataFrame, measure: str) -> Measured:
    """A clock's change of ``measure`` against the reference, pooled over models (:func:`pooled`)."""
    from nrg.book.findings import pct

    fmt: Callable[[float], str] = pct if measure == "energy_j" else signed
    return pooled(_dvfs_effects(rows, measure), fmt, "repeats")


def dvfs_energy_saving(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Energy saved at each model's energy-optimal lower clock vs the default (else the highest) clock."""
    return _dvfs_measured(rows, "energy_j")


def dvfs_latency_cost(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Latency change (positive = slower) at the same energy-optimal clock."""
    return _dvfs_measured(rows, "time_s")


CLAIMS: tuple[Claim, ...] = (
    Claim("03_dvfs", "dvfs_saving", "A lower GPU clock saves energy (each model's energy-optimal clock vs the "
          "default)", "42 % on average", MALIAKEL, dvfs_energy_saving, Rule("overlaps", *reported(0.42, 0.42), max_width=MAX_WIDTH)),
    Claim("03_dvfs", "dvfs_latency", "... for a small latency cost (the same clock; positive = slower)",
          "1–6 %", MALIAKEL, dvfs_latency_cost, Rule("overlaps", *reported(0.01, 0.06), max_width=MAX_WIDTH)),
)
