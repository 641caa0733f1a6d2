"""What a claim of :mod:`nrg.book.claims` computes from measured rows, as a :class:`Measured` value.

A claim's function takes a chapter's rows (and its checked parameters) and
returns the quantity the paper states, with a 95 % interval where the data
give one; rows that lack what a claim needs raise
:class:`nrg.errors.ParameterError` with the reason, which
:class:`nrg.book.claims.Claim` shows as "not measured". This module holds
:class:`Measured`, the intervals every claim uses (:func:`t_interval`,
:func:`share_interval`, a ratio of means pooled over models: :func:`pooled`)
and the one quantity several chapters check (decode's share of generation
time, :func:`decode_time_share`); each chapter's own quantities are in its
folder's ``claims`` module. Tested on constructed DataFrames (tests/test_claims.py).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd

CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class Measured:
    """A value computed from rows, its 95 % interval (None: one value only), and how it reads."""

    value: float | None = None
    low: float | None = None
    high: float | None = None
    text: str = ""

    @classmethod
    def missing(cls, reason: str) -> Measured:
        """Nothing to compare: the rows lack what the claim needs (``reason`` says what)."""
        return cls(text=f"not measured: {reason}")

    @property
    def measured(self) -> bool:
        """Whether there is a finite value to judge."""
        return self.value is not None and math.isfinite(self.value)

    def interval(self) -> tuple[float, float]:
        """The 95 % interval, or the point value twice when there is none."""
        assert self.value is not None
        low = self.low if self.low is not None and math.isfinite(self.low) else self.value
        high = self.high if self.high is not None and math.isfinite(self.high) else self.value
        return low, high


# ------------------------------------------------------------------ helpers


def _pct(x: float) -> str:
    from nrg.book.findings import pct

    return pct(x)


def t_interval(values: Any, confidence: float = CONFIDENCE) -> tuple[float, float | None, float | None]:
    """Mean and Student-t interval of ``values``; no interval from fewer than two values."""
    import numpy as np
    from scipy import stats as sps

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, None, None
    mean = float(v.mean())
    if len(v) < 2:
        return mean, None, None
    half = float(sps.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, mean - half, mean + half


SHARE_METHOD = "t interval on the logit scale"


def share_interval(values: Any, confidence: float = CONFIDENCE) -> tuple[float, float | None, float | None]:
    """Mean of shares in (0, 1) and a 95 % interval that stays inside (0, 1).

    Why: a Student-t interval of a few shares can reach below 0 or above 1
    ("−5.4 %–65 %"). The interval is taken on the logit scale and mapped back
    (:data:`SHARE_METHOD`); shares of exactly 0 or 1 are clipped a hair inside.
    """
    import numpy as np

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, None, None
    mean = float(v.mean())
    logits = np.log(np.clip(v, 1e-6, 1 - 1e-6) / (1 - np.clip(v, 1e-6, 1 - 1e-6)))
    _, low, high = t_interval(logits, confidence)
    if low is None or high is None:
        return mean, None, None
    back = lambda x: float(1 / (1 + math.exp(-x)))  # noqa: E731
    return mean, min(back(low), mean), max(back(high), mean)


def successful(rows: pd.DataFrame) -> pd.DataFrame:
    """The ok rows (:func:`nrg.stats.ok_rows`, imported only when a claim is computed)."""
    from nrg.stats import ok_rows

    return ok_rows(rows)


def _phase_times(rows: pd.DataFrame) -> pd.DataFrame:
    """Per cell and repeat: decode and generate time (decode = generate − prefill when not stored)."""
    good = successful(rows)
    if "phase" not in good.columns or "time_s" not in good.columns:
        raise ParameterError("the rows have no phase / time_s columns")
    wide = good[good["phase"].isin(["prefill", "decode", "generate"])].pivot_table(
        index=["cell_id", "repeat"], columns="phase", values="time_s", aggfunc="mean")
    if "generate" not in wide.columns or not ({"decode", "prefill"} & set(wide.columns)):
        phases = sorted(map(str, good["phase"].dropna().unique()))
        raise ParameterError(f"no generation split into prefill and decode (phases here: {phases})")
    if "decode" not in wide.columns:
        wide["decode"] = wide["generate"] - wide["prefill"]
    wide = wide[["decode", "generate"]].dropna()
    return wide[wide["generate"] > 0]


# ------------------------------------------------------------------ what each claim computes


def decode_time_share(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Decode's share of each generation's time; mean over cells (t interval over cells, or repeats of one)."""
    times = _phase_times(rows)
    if times.empty:
        raise ParameterError("no successful generation with a decode time")
    share = times["decode"] / times["generate"]
    cells = share.groupby(level="cell_id").mean()
    mean, low, high = share_interval(cells if len(cells) >= 2 else share)
    over = f"{len(cells)} cells, range {_pct(cells.min())}–{_pct(cells.max())}" if len(cells) >= 2 \
        else f"1 cell, {len(share)} repeats"
    ci = f"95 % CI {_pct(low)}–{_pct(high)}, {SHARE_METHOD}; " if low is not None and high is not None else ""
    return Measured(mean, low, high, f"{_pct(mean)} ({ci}{over})")


# ------------------------------------------------------------------ a change pooled over models


def ratio_of_means(a: pd.Series, b: pd.Series) -> tuple[float, float, int]:
    """mean(a)/mean(b), its delta-method variance, and the degrees of freedom."""
    ma, mb = float(a.mean()), float(b.mean())
    r = ma / mb
    va = a.var(ddof=1) / (len(a) * ma * ma) if len(a) > 1 and ma else math.nan
    vb = b.var(ddof=1) / (len(b) * mb * mb) if len(b) > 1 and mb else math.nan
    return r, r * r * (va + vb), len(a) + len(b) - 2


@dataclasses.dataclass(frozen=True)
class Effect:
    """One model's change against its reference setting: a ratio-of-means change, its variance and df."""

    setting: str
    change: float
    variance: float
    df: int


def signed(x: float) -> str:
    """A change as a signed percentage ("+3.2 %", "-50 %")."""
    return ("+" if x > 0 else "") + _pct(x)


def pooled(effects: Mapping[str, Effect], fmt: Callable[[float], str], samples: str) -> Measured:
    """Mean over models (t interval over models), or one model's change with its delta-method interval.

    ``samples`` names what the one model's interval is over ("repeats", "steady-state windows").
    """
    from scipy import stats as sps

    low: float | None
    high: float | None
    if len(effects) >= 2:
        mean, low, high = t_interval([e.change for e in effects.values()])
        how = f"mean of {len(effects)} models"
    else:
        (effect,) = effects.values()
        mean, low, high = effect.change, None, None
        if effect.df > 0 and math.isfinite(effect.variance):
            half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, effect.df) * math.sqrt(effect.variance))
            low, high = mean - half, mean + half
        how = f"1 model, delta-method interval over its {samples}"
    ci = f"95 % CI {fmt(low)} to {fmt(high)}; " if low is not None and high is not None else ""
    each = "; ".join(f"{m}: {fmt(e.change)} at {e.setting}" for m, e in effects.items())
    return Measured(mean, low, high, f"{fmt(mean)} ({ci}{how}; {each})")


def largest_vs_smallest(rows: pd.DataFrame, factor: str, phase: str, setting: str, samples: str,
                        no_rows: str, too_few: str) -> Measured:
    """Energy per token at a factor's largest level relative to its smallest, minus one (− = less), pooled.

    Per model the ratio of the two levels' mean ``energy_per_token_j`` over the
    ``phase`` rows, minus one; over several models the mean and its t interval,
    for one model the delta-method interval of the ratio (:func:`pooled`).
    ``setting`` names the factor in each model's entry ("batch 8 vs 1");
    ``no_rows`` and ``too_few`` say why nothing could be compared.
    """
    good = successful(rows)
    if not {"phase", factor, "energy_per_token_j"} <= set(good.columns):
        raise ParameterError(no_rows)
    chosen = good[(good["phase"] == phase) & good["energy_per_token_j"].notna()]
    effects: dict[str, Effect] = {}
    for model, part in chosen.groupby("model", sort=True):
        levels = sorted(part[factor].unique())
        if len(levels) < 2:
            continue
        low, high = levels[0], levels[-1]
        ratio, variance, df = ratio_of_means(part.loc[part[factor] == high, "energy_per_token_j"],
                                             part.loc[part[factor] == low, "energy_per_token_j"])
        effects[str(model)] = Effect(f"{setting} {int(high)} vs {int(low)}", ratio - 1, variance, df)
    if not effects:
        raise ParameterError(too_few)
    return pooled(effects, signed, samples)
