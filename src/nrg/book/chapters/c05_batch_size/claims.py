"""The claim chapter 5 checks: a larger batch lowers the energy per generated token (ML.ENERGY).

The seed papers hold the batch size fixed; the serving benchmark whose
published curves the book shows reports that batching is the largest lever on
energy per token. Chapter 5 measures the same quantity without an engine: the
energy per generated token of a whole generation at the largest batch size
relative to the smallest, per model. Judged by :mod:`nrg.book.claims`; chapter
6 checks the same claim under a serving engine's load.
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


def batch_change(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Energy per token of a generation at the largest batch size relative to the smallest, minus one (− = less).

    Per model the ratio of the two sizes' mean ``energy_per_token_j`` over the
    repeats of their ``generate`` rows, minus one; over several models the mean
    and its t interval, for one model the delta-method interval of the ratio.
    """
    good = successful(rows)
    if not {"phase", "batch_size", "energy_per_token_j"} <= set(good.columns):
        raise ParameterError("the rows have no generations by batch size (phase, batch_size, energy per token)")
    gen = good[(good["phase"] == "generate") & good["energy_per_token_j"].notna()]
    effects: dict[str, Effect] = {}
    for model, part in gen.groupby("model", sort=True):
        sizes = sorted(part["batch_size"].unique())
        if len(sizes) < 2:
            continue
        small, large = sizes[0], sizes[-1]
        ratio, variance, df = ratio_of_means(part.loc[part["batch_size"] == large, "energy_per_token_j"],
                                             part.loc[part["batch_size"] == small, "energy_per_token_j"])
        effects[str(model)] = Effect(f"batch {int(large)} vs {int(small)}", ratio - 1, variance, df)
    if not effects:
        raise ParameterError("no model ran at two batch sizes: nothing to compare")
    return pooled(effects, signed, "repeats")


CLAIMS: tuple[Claim, ...] = (
    Claim("05_batch_size", "batching_saves", "A larger batch lowers the energy per generated token "
          "(a generation's energy per token at the largest batch size vs the smallest; negative = less)",
          CHUNG_BATCHING, CHUNG, batch_change, Rule("within", -math.inf, 0.0)),
)
