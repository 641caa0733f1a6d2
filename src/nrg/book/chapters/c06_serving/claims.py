"""The claim chapter 6 checks: serving more requests at once lowers the energy per token (ML.ENERGY).

Chapter 6 tests none of the seed papers' claims (no prefill/decode split, no
clock, no compression: its section says so); it tests the serving benchmark's:
a larger batch lowers the energy per token. Judged by :mod:`nrg.book.claims`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.claim_measures import Measured, largest_vs_smallest
from nrg.book.claims import CHUNG, CHUNG_BATCHING, Claim, Rule

if TYPE_CHECKING:
    import pandas as pd


def serving_batch_change(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Chapter 6: steady-state energy per token at the highest concurrency relative to the lowest (− = less).

    Per model the ratio of the two levels' mean energy per token over their
    steady-state windows, minus one; over several models the mean and its t
    interval, for one model the delta-method interval of the ratio.
    """
    return largest_vs_smallest(
        rows, "concurrency", "steady", "concurrency", "steady-state windows",
        "the rows have no steady-state serving windows (phase, concurrency, energy per token)",
        "fewer than two concurrency levels were served: nothing to compare")


CLAIMS: tuple[Claim, ...] = (
    Claim("06_serving", "batching_saves", "Serving more requests at once lowers the energy per token "
          "(steady-state energy per token at the highest concurrency vs the lowest; negative = less)",
          CHUNG_BATCHING, CHUNG, serving_batch_change, Rule("within", -math.inf, 0.0)),
)
