"""The claim chapter 6 checks: serving more requests at once lowers the energy per token (ML.ENERGY).

Chapter 6 tests none of the seed papers' claims (no prefill/decode split, no
clock, no compression: its section says so); it tests the serving benchmark's:
a larger batch lowers the energy per token. Judged by :mod:`nrg.book.claims`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.claim_measures import Effect, Measured, pooled, ratio_of_means, signed, successful
from nrg.book.claims import CHUNG, CHUNG_BATCHING, Claim, Rule
from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd


def serving_batch_change(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Chapter 6: steady-state energy per token at the highest concurrency relative to the lowest (− = less).

    Per model the ratio of the two levels' mean energy per token over their
    steady-state windows, minus one; over several models the mean and its t
    interval, for one model the delta-method interval of the ratio.
    """
    good = successful(rows)
    if not {"phase", "concurrency", "energy_per_token_j"} <= set(good.columns):
        raise ParameterError("the rows have no steady-state serving windows (phase, concurrency, energy per token)")
    steady = good[(good["phase"] == "steady") & good["energy_per_token_j"].notna()]
    effects: dict[str, Effect] = {}
    for model, part in steady.groupby("model", sort=True):
        levels = sorted(part["concurrency"].unique())
        if len(levels) < 2:
            continue
        low_level, high_level = levels[0], levels[-1]
        ratio, variance, df = ratio_of_means(part.loc[part["concurrency"] == high_level, "energy_per_token_j"],
                                     part.loc[part["concurrency"] == low_level, "energy_per_token_j"])
        effects[str(model)] = Effect(f"concurrency {int(high_level)} vs {int(low_level)}", ratio - 1, variance, df)
    if not effects:
        raise ParameterError("fewer than two concurrency levels were served: nothing to compare")
    return pooled(effects, signed, "steady-state windows")


CLAIMS: tuple[Claim, ...] = (
    Claim("06_serving", "batching_saves", "Serving more requests at once lowers the energy per token "
          "(steady-state energy per token at the highest concurrency vs the lowest; negative = less)",
          CHUNG_BATCHING, CHUNG, serving_batch_change, Rule("within", -math.inf, 0.0)),
)
