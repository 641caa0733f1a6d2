"""How a measure grows with input and output length: OLS fits and phase shares.

The slope of energy on ``input_tokens`` is the cost of one more prompt token
(J per input token) and the slope on ``output_tokens`` the cost of one more
generated token; a 95% interval on each says how well the sweep pins them down.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from nrg.errors import ParameterError, check_choice
from nrg.stats._data import as_list, check_confidence, ok_rows, quote, require_columns, unit

LENGTHS = ("input_tokens", "output_tokens")
COV_TYPES = ("nonrobust", "HC3")
COEF_COLUMNS = ("term", "estimate", "std_err", "ci_low", "ci_high", "p")


@dataclass(frozen=True, eq=False)
class LengthFit:
    """OLS of a response on the length columns; ``coefficients`` in tidy form."""

    response: str
    formula: str
    coefficients: pd.DataFrame
    r2: float
    n_obs: int
    confidence: float
    notes: tuple[str, ...] = ()
    fit: Any = field(default=None, repr=False)

    def coefficient(self, term: str) -> pd.Series:
        """One row of ``coefficients`` ("input_tokens", "Intercept", ...)."""
        hits = self.coefficients[self.coefficients["term"] == term]
        if hits.empty:
            raise ParameterError(f"term={term!r} is not in the fit; terms: {list(self.coefficients['term'])}")
        return hits.iloc[0]

    def predict(self, data: pd.DataFrame) -> np.ndarray:
        """Fitted values at new length values (columns as in the fit)."""
        return np.asarray(self.fit.predict(data))


def per_token_unit(response: str) -> str:
    """The unit of a slope per token: "J/token" for energy_j, "s/token" for time_s."""
    u = unit(response)
    if not u:
        return "per token"
    return f"{u}/token" if "/" not in u else f"{u} per token"


def fit_lengths(
    df: pd.DataFrame,
    response: str = "energy_j",
    lengths: Sequence[str] = LENGTHS,
    *,
    interaction: bool = False,
    confidence: float = 0.95,
    cov_type: str = "nonrobust",
) -> LengthFit:
    """OLS ``response ~ input_tokens + output_tokens`` (``*`` with ``interaction``).

    A length with a single value in the data cannot have a slope: it is left
    out and the note says so. ``cov_type="HC3"`` gives heteroscedasticity-robust
    intervals (energy varies more at long lengths); like the OLS ones they use
    Student's t with the residual degrees of freedom (statsmodels would use
    the normal distribution, too narrow with the few cells a sweep has).
    """
    length_cols = as_list(lengths)
    require_columns(df, [response], "response")
    require_columns(df, length_cols, "lengths")
    check_confidence(confidence)
    check_choice("cov_type", cov_type, COV_TYPES)
    data = ok_rows(df)[[response, *length_cols]].apply(pd.to_numeric, errors="coerce").dropna()
    notes = []
    varying = [c for c in length_cols if data[c].nunique() > 1]
    for c in length_cols:
        if c not in varying:
            notes.append(f"{c} takes a single value in the data: no slope can be fitted for it.")
    joiner = " * " if interaction and len(varying) > 1 else " + "
    rhs = joiner.join(quote(c) for c in varying) or "1"
    formula = f"{quote(response)} ~ {rhs}"
    if len(data) <= len(varying) + 1 + (1 if joiner == " * " else 0):
        raise ParameterError(f"response={response!r}: {len(data)} usable row(s) are too few to fit {formula}")
    fit = smf.ols(formula, data=data).fit(cov_type=cov_type, use_t=True)
    if interaction and joiner == " * ":
        notes.append("With the interaction, the per-token slopes hold where the other length is zero; "
                     "the interaction term says how one length changes the cost of the other.")
    ci = fit.conf_int(alpha=1 - confidence)
    coefs = pd.DataFrame({"term": fit.params.index, "estimate": fit.params.to_numpy(),
                          "std_err": fit.bse.to_numpy(), "ci_low": ci[0].to_numpy(),
                          "ci_high": ci[1].to_numpy(), "p": fit.pvalues.to_numpy()})
    coefs["term"] = coefs["term"].map(_unquote)
    return LengthFit(response, formula, coefs, float(fit.rsquared), int(fit.nobs), confidence, tuple(notes), fit)


def _unquote(term: str) -> str:
    return term.replace('Q("', "").replace('")', "")


def per_token_costs(
    df: pd.DataFrame,
    response: str = "energy_j",
    by: str | Sequence[str] | None = ("model",),
    lengths: Sequence[str] = LENGTHS,
    *,
    interaction: bool = False,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The fitted cost of one more input / output token per group, with its interval.

    Columns: ``*by, term, estimate, ci_low, ci_high, p, unit, r2, n``; one row
    per group per length column that varies in that group.
    """
    by_cols = as_list(by)
    require_columns(df, by_cols, "by")
    groups = ok_rows(df).groupby(by_cols, observed=True, sort=True) if by_cols else [((), ok_rows(df))]
    rows = []
    for key, part in groups:
        fit = fit_lengths(part, response, lengths, interaction=interaction, confidence=confidence)
        key = key if isinstance(key, tuple) else (key,)
        slopes = fit.coefficients[fit.coefficients["term"].isin(as_list(lengths))]
        for _, row in slopes.iterrows():
            rows.append({**dict(zip(by_cols, key, strict=True)), "term": row["term"], "estimate": row["estimate"],
                         "ci_low": row["ci_low"], "ci_high": row["ci_high"], "p": row["p"],
                         "unit": per_token_unit(response), "r2": fit.r2, "n": fit.n_obs})
    from nrg.stats._data import estimated, is_energy

    out = pd.DataFrame(rows, columns=[*by_cols, "term", "estimate", "ci_low", "ci_high", "p", "unit", "r2", "n"])
    out.attrs["energy_estimated"] = is_energy(response) and estimated(ok_rows(df))
    if is_energy(response):
        out.attrs["energy_columns"] = ("estimate", "ci_low", "ci_high")   # energy per token: headers say so
    return out


def phase_share(
    df: pd.DataFrame,
    by: str | Sequence[str] = ("model", "input_tokens", "output_tokens"),
    measures: str | Sequence[str] = ("time_s", "energy_j"),
) -> pd.DataFrame:
    """Prefill and decode share of each measure per cell (shares add up to 1).

    Uses the mean over repeats of the ``prefill`` and ``decode`` rows. When a
    cell has no ``decode`` rows but has ``generate`` rows, decode is taken as
    generate − prefill (the way decode is measured) and ``decode_source`` says so.
    """
    by_cols, measure_cols = as_list(by), as_list(measures)
    require_columns(df, ["phase", *by_cols], "by")
    require_columns(df, measure_cols, "measures")
    data = ok_rows(df)
    if not data["phase"].isin(["prefill"]).any():
        raise ParameterError("phase: the data has no 'prefill' rows; phase shares need prefill and decode rows")
    means = (data[data["phase"].isin(["prefill", "decode", "generate"])]
             .groupby([*by_cols, "phase"], observed=True)[measure_cols].agg(["mean", "count"]))
    rows = []
    for key, part in means.groupby(level=list(range(len(by_cols))), observed=True):
        key = key if isinstance(key, tuple) else (key,)
        phases = part.droplevel(list(range(len(by_cols))))
        for m in measure_cols:
            row = _share_row(phases, m)
            if row is not None:
                rows.append({**dict(zip(by_cols, key, strict=True)), "measure": m, **row})
    columns = [*by_cols, "measure", "prefill", "decode", "total", "prefill_share", "decode_share",
               "n", "decode_source"]
    from nrg.stats._data import estimated, is_energy

    out = pd.DataFrame(rows, columns=columns)
    # shares of estimated energy are shares of estimated energy: figures and tables say so
    out.attrs["energy_estimated"] = any(is_energy(m) for m in measure_cols) and estimated(data)
    return out


def _share_row(phases: pd.DataFrame, measure: str) -> dict[str, Any] | None:
    if "prefill" not in phases.index:
        return None
    mean = phases[(measure, "mean")].astype(float)
    prefill = mean["prefill"]
    n = int(phases[(measure, "count")].astype(int)["prefill"])
    if "decode" in phases.index:
        decode, source = mean["decode"], "measured"
    elif "generate" in phases.index:
        decode, source = mean["generate"] - prefill, "generate − prefill"
    else:
        return None
    total = prefill + decode
    share = decode / total if total > 0 else np.nan
    return {"prefill": prefill, "decode": decode, "total": total, "prefill_share": 1 - share,
            "decode_share": share, "n": n, "decode_source": source}
