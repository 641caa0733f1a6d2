"""The claims chapter 2 checks: decode's share of generation time, and an output token dearer than an input one.

Maliakel et al. report that the output length dominates: the fitted energy per
output token (β_out) exceeds that per input token (β_in). Computed per model
from a fit of the generation's energy on both lengths
(:func:`output_vs_input_token`); judged by :mod:`nrg.book.claims`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.claim_measures import CONFIDENCE, Measured, successful
from nrg.book.claims import MALIAKEL, Claim, Rule, decode_share_claim
from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd


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
    gen = successful(rows)
    gen = gen[gen["phase"] == "generate"] if "phase" in gen.columns else gen
    fits = {str(m): d for m, part in gen.groupby("model", sort=True) if (d := _slope_difference(part)) is not None}
    if not fits:
        raise ParameterError("input and output length do not both vary for any model in these rows")
    worst = min(fits, key=lambda m: fits[m][1])
    parts = [f"{m}: output {d[4]:.3g} vs input {d[3]:.3g} J/token (difference 95 % CI {d[1]:.3g} to {d[2]:.3g})"
             for m, d in fits.items()]
    return Measured(fits[worst][0], fits[worst][1], fits[worst][2], "; ".join(parts))


CLAIMS: tuple[Claim, ...] = (
    decode_share_claim("02_sequence_length"),
    Claim("02_sequence_length", "output_costs_more",
          "Output length dominates: an output token costs more energy than an input token (β_out − β_in)",
          "β_out > β_in", MALIAKEL, output_vs_input_token, Rule("within", 0.0, math.inf), unit="J/token"),
)
