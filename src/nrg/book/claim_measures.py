"""What each claim of :mod:`nrg.book.claims` computes from measured rows, as a :class:`Measured` value.

Each function takes a chapter's rows (and its checked parameters) and returns
the quantity the paper states, with a 95 % interval where the data give one;
rows that lack what a claim needs raise :class:`nrg.errors.ParameterError`
with the reason, which :class:`nrg.book.claims.Claim` shows as "not measured".
Tested on constructed DataFrames (tests/test_claims.py).
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


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    from nrg.stats import ok_rows

    return ok_rows(rows)


def _phase_times(rows: pd.DataFrame) -> pd.DataFrame:
    """Per cell and repeat: decode and generate time (decode = generate − prefill when not stored)."""
    good = _ok(rows)
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


def _slope_difference(part: pd.DataFrame) -> tuple[float, float, float, float, float] | None:
    """β_out − β_in of energy on both lengths with its t interval, and both slopes; None if one is fixed."""
    from scipy import stats as sps

    from nrg.stats import fit_lengths

    if part["input_tokens"].nunique() < 2 or part["output_tokens"].nunique() < 2:
        return None
    fit = fit_lengths(part, "energy_j").fit
    names = {n.replace('Q("', "").replace('")', ""): n for n in fit.params.index}
    b_in, b_out = fit.params[names["input_tokens"]], fit.params[names["output_tokens"]]
    cov = fit.cov_params()
    var = cov.loc[names["output_tokens"], names["output_tokens"]] + cov.loc[names["input_tokens"], names["input_tokens"]] \
        - 2 * cov.loc[names["output_tokens"], names["input_tokens"]]
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, fit.df_resid) * math.sqrt(max(var, 0.0)))
    diff = float(b_out - b_in)
    return diff, diff - half, diff + half, float(b_in), float(b_out)


def output_vs_input_token(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """β_out − β_in (J/token) per model; the value is the least favourable model's (lowest interval)."""
    gen = _ok(rows)
    gen = gen[gen["phase"] == "generate"] if "phase" in gen.columns else gen
    fits = {m: d for m, part in gen.groupby("model", sort=True) if (d := _slope_difference(part)) is not None}
    if not fits:
        raise ParameterError("input and output length do not both vary for any model in these rows")
    worst = min(fits, key=lambda m: fits[m][1])
    parts = [f"{m}: output {d[4]:.3g} vs input {d[3]:.3g} J/token (difference 95 % CI {d[1]:.3g} to {d[2]:.3g})"
             for m, d in fits.items()]
    return Measured(fits[worst][0], fits[worst][1], fits[worst][2], "; ".join(parts))


def _ratio(a: pd.Series, b: pd.Series) -> tuple[float, float, int]:
    """mean(a)/mean(b), its delta-method variance, and the degrees of freedom."""
    ma, mb = float(a.mean()), float(b.mean())
    r = ma / mb
    va = a.var(ddof=1) / (len(a) * ma * ma) if len(a) > 1 and ma else math.nan
    vb = b.var(ddof=1) / (len(b) * mb * mb) if len(b) > 1 and mb else math.nan
    return r, r * r * (va + vb), len(a) + len(b) - 2


@dataclasses.dataclass(frozen=True)
class _Effect:
    """One model's lower clock against its reference: a ratio-of-means change, its variance and df."""

    setting: str
    change: float
    variance: float
    df: int


def _dvfs_effects(rows: pd.DataFrame, measure: str) -> dict[str, _Effect]:
    """Per model: the energy saving (``energy_j``) or latency change (``time_s``) at its best lower clock.

    The clock is the energy-optimal locked one; the reference is the default
    (unlocked) setting when measured, else the highest locked clock.
    """
    from nrg.stats import clock_key

    gen = _ok(rows)
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
        best = float(candidates.groupby("_clock")["energy_j"].mean().idxmin())
        ratio, variance, df = _ratio(candidates.loc[candidates["_clock"] == best, measure], ref[measure])
        against = "default" if len(default) else f"{top:g} MHz"
        change = 1 - ratio if measure == "energy_j" else ratio - 1
        out[str(model)] = _Effect(f"{best:g} MHz vs {against}", change, variance, df)
    if not out:
        raise ParameterError("only one GPU setting was measured (no lower locked clock to compare with)")
    return out


def _signed(x: float) -> str:
    return ("+" if x > 0 else "") + _pct(x)


def _pooled(effects: Mapping[str, _Effect], fmt: Callable[[float], str], samples: str) -> Measured:
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


def _dvfs_measured(rows: pd.DataFrame, measure: str) -> Measured:
    """A clock's change of ``measure`` against the reference, pooled over models (:func:`_pooled`)."""
    fmt: Callable[[float], str] = _pct if measure == "energy_j" else _signed
    return _pooled(_dvfs_effects(rows, measure), fmt, "repeats")


def dvfs_energy_saving(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Energy saved at each model's energy-optimal lower clock vs the default (else the highest) clock."""
    return _dvfs_measured(rows, "energy_j")


def dvfs_latency_cost(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Latency change (positive = slower) at the same energy-optimal clock."""
    return _dvfs_measured(rows, "time_s")


def _rankings(rows: pd.DataFrame, params: Mapping[str, Any], prune: str | None = None) -> dict[str, Any]:
    """Chapter 4's R ranking of every task x phase with quality (only ``prune`` rows when given)."""
    from nrg.book.chapters.c04_network_tickets import analysis as tickets_analysis
    from nrg.book.chapters.c04_network_tickets.chance import chance_quality
    from nrg.book.chapters.c04_network_tickets.driver import METRICS
    from nrg.book.findings import ranking_checks

    metrics = dict(params.get("metrics") or {t: m[0] for t, m in METRICS.items()})
    w = float(params.get("w", 0.5))
    good = _ok(rows)
    if prune is not None and "prune" in good.columns:
        good = good[good["prune"].astype("string").fillna("none") == prune]
    out, withheld = {}, []
    for task in sorted(set(good.get("task", [])) & set(metrics)):
        for phase in tickets_analysis.PHASES:
            part = good[(good["task"] == task) & (good["phase"] == phase)]
            if part.empty or metrics[task] not in part.columns or part[metrics[task]].isna().all():
                continue
            try:
                ranked = tickets_analysis.ranking(part, task, phase, metrics[task], w)
            except ParameterError:
                continue
            failed = [c.why for c in ranking_checks(ranked, chance_quality(params, task, metrics[task]))
                      if not c.passed]
            if failed:
                withheld.append(f"{task} {phase}: {'; '.join(failed)}")
                continue
            out[f"{task} {phase}"] = ranked.table
    if not out:
        if withheld:
            more = f"; and {len(withheld) - 1} more ranking(s) like it" if len(withheld) > 1 else ""
            raise ParameterError(f"no ranking can name a best configuration ({withheld[0]}{more})")
        raise ParameterError("no quantization x pruning combination has both energy and task quality "
                             "(R = w·φ + (1−w)·ρ needs both)")
    return out


def _is_16_bit(quant: Any) -> bool:
    from nrg.compress.quantization import BITS

    return BITS.get(str(quant)) == 16


def _top_fraction(tables: Mapping[str, Any], wanted: Callable[[Any], bool], what: str) -> Measured:
    """In how many rankings containing ``wanted`` combinations one of them ranks first."""
    holding = {k: t for k, t in tables.items() if t.apply(wanted, axis=1).any()}
    if not holding:
        seen = sorted({f"{r.quant} / {r.prune}" for t in tables.values() for r in t.itertuples()})
        raise ParameterError(f"{what} was not among the ranked combinations ({', '.join(seen)})")
    first = {k: t.iloc[0] for k, t in holding.items()}
    wins = sum(bool(wanted(row)) for row in first.values())
    text = "; ".join(f"{k}: best {r['quant']} / {r['prune']} (R {r['R']:.2f})" for k, r in first.items())
    return Measured(wins / len(holding), None, None, f"first in {wins} of {len(holding)} rankings ({text})")


def best_balance(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Whether 16-bit with 2:4 pruning ranks first by R in every ranking that includes it."""
    return _top_fraction(_rankings(rows, params), lambda r: _is_16_bit(r["quant"]) and str(r["prune"]) == "2:4",
                         "16-bit with 2:4 pruning")


def sixteen_bit_best(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Whether 16-bit ranks first by R among the unpruned quantizations, in every ranking with one."""
    return _top_fraction(_rankings(rows, params, prune="none"), lambda r: _is_16_bit(r["quant"]),
                         "a 16-bit quantization (unpruned)")




def serving_batch_change(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Chapter 6: steady-state energy per token at the highest concurrency relative to the lowest (− = less).

    Per model the ratio of the two levels' mean energy per token over their
    steady-state windows, minus one; over several models the mean and its t
    interval, for one model the delta-method interval of the ratio.
    """
    good = _ok(rows)
    if not {"phase", "concurrency", "energy_per_token_j"} <= set(good.columns):
        raise ParameterError("the rows have no steady-state serving windows (phase, concurrency, energy per token)")
    steady = good[(good["phase"] == "steady") & good["energy_per_token_j"].notna()]
    effects: dict[str, _Effect] = {}
    for model, part in steady.groupby("model", sort=True):
        levels = sorted(part["concurrency"].unique())
        if len(levels) < 2:
            continue
        low_level, high_level = levels[0], levels[-1]
        ratio, variance, df = _ratio(part.loc[part["concurrency"] == high_level, "energy_per_token_j"],
                                     part.loc[part["concurrency"] == low_level, "energy_per_token_j"])
        effects[str(model)] = _Effect(f"concurrency {int(high_level)} vs {int(low_level)}", ratio - 1, variance, df)
    if not effects:
        raise ParameterError("fewer than two concurrency levels were served: nothing to compare")
    return _pooled(effects, _signed, "steady-state windows")
